"""The admin's review of conversations: reading them (audited), flags, the read audit, the
usage report, and model prices."""

import csv
import json
from collections import defaultdict
from datetime import timedelta
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.http import Http404, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.http import content_disposition_header
from django.utils.text import smart_split, unescape_string_literal
from django.utils.translation import gettext, gettext_lazy, ngettext

from conversations import export, shares, tree
from conversations.models import Attachment, Conversation, Feedback, Message, Share
from review import audit, flags, privacy, usage_report
from review.models import Flag, ModelPrice, ReviewAccess, ShareEvent
from webchat.return_url import return_url


def _conversation_label(conversation: Conversation) -> str:
    """The conversation's title while staff may read conversations; else only its number."""
    if audit.staff_can_read():
        return conversation.title or gettext("Untitled conversation %(number)s") % {
            "number": conversation.pk
        }
    return gettext("Conversation %(number)s") % {"number": conversation.pk}


def _conversation_link(conversation_id: int | None, label: str) -> str:
    if conversation_id is None:
        return label
    url = reverse("admin:conversations_conversation_change", args=[conversation_id])
    return format_html('<a href="{}">{}</a>', url, label)


class ExistsFilter(admin.SimpleListFilter):
    """Yes/no: whether a conversation has any of the rows ``related`` selects for it."""

    def lookups(self, request, model_admin):
        return [("yes", gettext("Yes")), ("no", gettext("No"))]

    def related(self, conversation: OuterRef) -> QuerySet:
        raise NotImplementedError

    def queryset(self, request, queryset):
        if self.value() not in ("yes", "no"):
            return queryset
        exists = Exists(self.related(OuterRef("pk")))
        return queryset.filter(exists if self.value() == "yes" else ~exists)


class FlaggedFilter(ExistsFilter):
    title = gettext_lazy("open flags")
    parameter_name = "flagged"

    def related(self, conversation):
        return Flag.objects.filter(conversation=conversation, cleared_at__isnull=True)


class HasImagesFilter(ExistsFilter):
    title = gettext_lazy("has images")
    parameter_name = "images"

    def related(self, conversation):
        return Attachment.objects.filter(message__conversation=conversation)


class HasErrorsFilter(ExistsFilter):
    title = gettext_lazy("has failed replies")
    parameter_name = "errors"

    def related(self, conversation):
        return Message.objects.filter(
            conversation=conversation, status__in=usage_report.FAILED_STATUSES
        )


class SharedFilter(ExistsFilter):
    title = gettext_lazy("has live share links")
    parameter_name = "shared"

    def related(self, conversation):
        return Share.objects.filter(conversation=conversation, revoked_at__isnull=True)


class FeedbackFilter(admin.SimpleListFilter):
    """Conversations by the feedback their owner gave their replies."""

    title = gettext_lazy("feedback")
    parameter_name = "feedback"

    def lookups(self, request, model_admin):
        return [
            ("up", gettext("Thumbs up")),
            ("down", gettext("Thumbs down")),
            ("none", gettext("None")),
        ]

    def queryset(self, request, queryset):
        given = Feedback.objects.filter(message__conversation=OuterRef("pk"))
        if self.value() == "up":
            return queryset.filter(Exists(given.filter(rating=Feedback.Rating.UP)))
        if self.value() == "down":
            return queryset.filter(Exists(given.filter(rating=Feedback.Rating.DOWN)))
        if self.value() == "none":
            return queryset.filter(~Exists(given))
        return queryset


class LastActivityFilter(admin.DateFieldListFilter):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.title = gettext("last activity")


USAGE_MAX_DAYS = 366
USAGE_DEFAULT_DAYS = 30
USAGE_CSV_COLUMNS = (
    ("day", gettext_lazy("Day")),
    ("username", gettext_lazy("User")),
    ("messages", gettext_lazy("Messages")),
    ("replies", gettext_lazy("Replies")),
    ("tokens_in", gettext_lazy("Tokens in")),
    ("tokens_out", gettext_lazy("Tokens out")),
    ("reasoning_tokens", gettext_lazy("Reasoning tokens")),
    ("errors", gettext_lazy("Failed replies")),
)


class UsageReportForm(forms.Form):
    start = forms.DateField(
        label=gettext_lazy("From"), widget=forms.DateInput(attrs={"type": "date"})
    )
    end = forms.DateField(label=gettext_lazy("To"), widget=forms.DateInput(attrs={"type": "date"}))
    user = forms.ModelChoiceField(
        queryset=get_user_model().objects.order_by("username"),
        required=False,
        label=gettext_lazy("User"),
        empty_label=gettext_lazy("Everyone"),
    )

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("start"), cleaned.get("end")
        if start and end:
            if start > end:
                raise forms.ValidationError(gettext("The first day must not come after the last."))
            if (end - start).days >= USAGE_MAX_DAYS:
                raise forms.ValidationError(
                    gettext("Choose at most %(days)s days.") % {"days": USAGE_MAX_DAYS}
                )
        return cleaned


def _csv_cell(value: object) -> object:
    # A text cell starting like a formula would be run by a spreadsheet.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows the application writes: never added or edited in the admin."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class AuditRecordAdmin(ReadOnlyAdmin):
    """A record of what was done: not deleted either."""

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Conversation)
class ConversationAdmin(ReadOnlyAdmin):
    """Conversations, read-only for everyone: a list with their figures, a review page
    with the transcript (when staff may read conversations), flags and a usage report."""

    list_display = (
        "title_shown",
        "owner",
        "model",
        "message_count",
        "tokens_used",
        "started",
        "last_activity",
        "open_flags",
        "source",
    )
    list_filter = (
        "owner",
        "model",
        "source",
        ("updated_at", LastActivityFilter),
        FlaggedFilter,
        HasImagesFilter,
        HasErrorsFilter,
        SharedFilter,
        FeedbackFilter,
    )
    list_select_related = ("owner",)
    list_per_page = 50
    # Counting every conversation on each page view is slow with many; the filtered
    # count is still shown.
    show_full_result_count = False
    ordering = ("-updated_at",)
    actions = ["export_json"]

    def get_queryset(self, request):
        # Figures as correlated subqueries: computed for the rows of one page only,
        # where a join with GROUP BY would aggregate every message first.
        messages_of = Message.objects.filter(conversation=OuterRef("pk")).order_by()
        per_conversation = messages_of.values("conversation")
        open_flags = Flag.objects.filter(conversation=OuterRef("pk"), cleared_at__isnull=True)
        tokens = Coalesce("prompt_tokens", 0) + Coalesce("completion_tokens", 0)
        return (
            super()
            .get_queryset(request)
            .select_related("owner")
            .annotate(
                message_count=Coalesce(
                    Subquery(per_conversation.annotate(n=Count("pk")).values("n")), 0
                ),
                tokens_used=Coalesce(
                    Subquery(per_conversation.annotate(n=Sum(tokens)).values("n")), 0
                ),
                open_flag_count=Coalesce(
                    Subquery(
                        open_flags.order_by()
                        .values("conversation")
                        .annotate(n=Count("pk"))
                        .values("n")
                    ),
                    0,
                ),
            )
        )

    def get_list_display(self, request):
        if audit.staff_can_read():
            return self.list_display
        # Not even sorted by title: sorted among titles one wrote oneself, others' are read.
        return ("number_shown", *self.list_display[1:])

    def lookup_allowed(self, lookup, value, request=None):
        # Filtering on what users wrote would reveal it a guess at a time, and would skip the
        # audit: only search finds words, and only while staff may read conversations.
        if privacy.lookup_reaches_private_field(self.model, lookup):
            return False
        return super().lookup_allowed(lookup, value, request)

    def get_search_fields(self, request):
        if audit.staff_can_read():
            return ("title", "messages__content", "owner__username")
        return ("owner__username",)

    def get_search_results(self, request, queryset, search_term):
        """Each word in the title, the owner's name or, as an EXISTS per conversation,
        a message: no join of every message, and so no DISTINCT over the result."""
        can_read = audit.staff_can_read()
        for word in smart_split(search_term):
            if word[:1] in ('"', "'") and word[-1:] == word[:1]:
                word = unescape_string_literal(word)
            matches = Q(owner__username__icontains=word)
            if can_read:
                in_messages = Message.objects.filter(
                    conversation=OuterRef("pk"), content__icontains=word
                )
                matches |= Q(title__icontains=word) | Exists(in_messages)
            queryset = queryset.filter(matches)
        return queryset, False

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not audit.staff_can_read():
            actions.pop("export_json", None)
        return actions

    @admin.display(description=gettext_lazy("title"), ordering="title")
    def title_shown(self, conversation: Conversation) -> str:
        return _conversation_label(conversation)

    @admin.display(description=gettext_lazy("conversation"), ordering="pk")
    def number_shown(self, conversation: Conversation) -> str:
        return _conversation_label(conversation)

    @admin.display(description=gettext_lazy("messages"), ordering="message_count")
    def message_count(self, conversation: Conversation) -> int:
        return conversation.message_count

    @admin.display(description=gettext_lazy("tokens used"), ordering="tokens_used")
    def tokens_used(self, conversation: Conversation) -> int:
        return conversation.tokens_used

    @admin.display(description=gettext_lazy("started"), ordering="created_at")
    def started(self, conversation: Conversation) -> str:
        return date_format(timezone.localtime(conversation.created_at), "SHORT_DATETIME_FORMAT")

    @admin.display(description=gettext_lazy("last activity"), ordering="updated_at")
    def last_activity(self, conversation: Conversation) -> str:
        return date_format(timezone.localtime(conversation.updated_at), "SHORT_DATETIME_FORMAT")

    @admin.display(description=gettext_lazy("open flags"), ordering="open_flag_count")
    def open_flags(self, conversation: Conversation) -> str:
        return f"⚑ {conversation.open_flag_count}" if conversation.open_flag_count else ""

    def get_object(self, request, object_id, from_field=None):
        conversation = super().get_object(request, object_id, from_field)
        if conversation is not None and not audit.staff_can_read():
            # Not to be shown by any page (delete confirmation, history); never saved.
            conversation.title = ""
            conversation.system_prompt = ""
        return conversation

    def get_deleted_objects(self, objs, request):
        # The conversations only: listing each of their messages helps nobody decide.
        _listed, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        listed = [
            format_html(
                gettext("{conversation} (of {owner})"),
                conversation=_conversation_label(obj),
                owner=obj.owner.get_username(),
            )
            for obj in objs
        ]
        return listed, counts, perms_needed, protected

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("usage/", view(self.usage_view), name="conversations_conversation_usage"),
            path(
                "<path:object_id>/flag/",
                view(self.flag_view),
                name="conversations_conversation_flag",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if request.method != "GET":
            return super().change_view(request, object_id, form_url, extra_context)
        conversation = self.get_object(request, unquote(object_id))
        if conversation is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_view_permission(request, conversation):
            raise PermissionDenied
        can_read = audit.staff_can_read()
        shape = tree.shape_of(conversation.pk)
        branch_ids = tree.branch_ids(conversation, shape)
        shown, shown_ids = tree.messages_in_order(branch_ids), set(branch_ids)
        conversation_flags = list(
            conversation.flags.select_related("flagged_by", "cleared_by").order_by("-created_at")
        )
        flags_by_message = defaultdict(list)
        for flag in conversation_flags:
            flags_by_message[flag.message_id].append(flag)
        for message in shown:
            message.review_flags = flags_by_message.get(message.pk, [])
        if can_read:
            audit.review_accesses_record(viewer=request.user, conversations=[conversation])
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _conversation_label(conversation),
            "subtitle": None,
            "conversation": conversation,
            "can_read": can_read,
            "chat_messages": shown,
            "other_versions": len(shape.parents) - len(shown_ids),
            "conversation_flags": flags_by_message.get(None, []),
            # Flags on versions the user replaced, which the transcript does not show.
            "flags_on_hidden_versions": [
                flag
                for flag in conversation_flags
                if flag.message_id and flag.message_id not in shown_ids
            ],
            "conversation_shares": list(conversation.shares.all()),
            "can_flag": request.user.has_perm("review.add_flag"),
            "can_clear": request.user.has_perm("review.change_flag"),
            "has_delete_permission": self.has_delete_permission(request, conversation),
            "settings_shown": [
                (label, value)
                for label, value in (
                    (gettext("Temperature"), conversation.temperature),
                    (gettext("Top P"), conversation.top_p),
                    (gettext("Top K"), conversation.top_k),
                    (gettext("Max tokens"), conversation.max_tokens),
                    (gettext("Reasoning effort"), conversation.get_reasoning_effort_display()),
                )
                if value not in (None, "")
            ],
        }
        return TemplateResponse(request, "admin/conversations/conversation/review.html", context)

    def flag_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        conversation = self.get_object(request, unquote(object_id))
        if conversation is None or not self.has_view_permission(request, conversation):
            raise Http404("No such conversation.")
        if not request.user.has_perm("review.add_flag"):
            raise PermissionDenied
        page = reverse("admin:conversations_conversation_change", args=[conversation.pk])
        raw_message = request.POST.get("message", "")
        try:
            message_id = int(raw_message) if raw_message else None
            flags.flag_create(
                conversation=conversation,
                flagged_by=request.user,
                note=request.POST.get("note", ""),
                message_id=message_id,
            )
        except ValueError:
            self.message_user(
                request, gettext("That message is not part of this conversation."), messages.ERROR
            )
        except flags.FlagRefused as refusal:
            self.message_user(request, str(refusal), messages.ERROR)
        else:
            if message_id:
                flagged = gettext("The message is flagged.")
            else:
                flagged = gettext("The conversation is flagged.")
            self.message_user(request, flagged, messages.SUCCESS)
            if message_id:
                page += f"#message-{message_id}"
        return redirect(page)

    @admin.action(
        description=gettext_lazy("Export the selected conversations as JSON (with images)"),
        permissions=["view"],
    )
    def export_json(self, request, queryset):
        conversations = list(queryset.select_related("owner").order_by("pk"))
        audit.review_accesses_record(viewer=request.user, conversations=conversations)
        payload = {
            "exported_at": timezone.now().isoformat(),
            "conversations": [
                {
                    "id": conversation.pk,
                    "owner": conversation.owner.get_username(),
                    **export.conversation_json(conversation),
                }
                for conversation in conversations
            ],
        }
        response = HttpResponse(
            json.dumps(payload, ensure_ascii=False),
            content_type="application/json; charset=utf-8",
        )
        filename = f"conversations-{timezone.localdate().isoformat()}.json"
        response["Content-Disposition"] = content_disposition_header(True, filename)
        return response

    def usage_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        today = timezone.localdate()
        data = {
            "start": (today - timedelta(days=USAGE_DEFAULT_DAYS - 1)).isoformat(),
            "end": today.isoformat(),
            **request.GET.dict(),
        }
        form = UsageReportForm(data)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": gettext("Usage per user and day"),
            "subtitle": None,
            "form": form,
        }
        if form.is_valid():
            start, end, user = (form.cleaned_data[name] for name in ("start", "end", "user"))
            rows = usage_report.usage_report(
                start=start, end=end, user_id=user.pk if user else None
            )
            if request.GET.get("format") == "csv":
                return self._usage_csv(rows, start, end)
            days = usage_report.usage_per_day(rows, start=start, end=end)
            feedback_rows = usage_report.feedback_report(
                start=start, end=end, user_id=user.pk if user else None
            )
            context.update(
                feedback_rows=feedback_rows,
                feedback_total=usage_report.feedback_total(feedback_rows),
                rows=rows,
                chart=usage_report.usage_chart(days),
                totals={
                    name: sum(getattr(row, name) for row in rows)
                    for name, _label in USAGE_CSV_COLUMNS[2:]
                },
                csv_query=urlencode({**form.data, "format": "csv"}),
            )
        return TemplateResponse(request, "admin/conversations/usage_report.html", context)

    def _usage_csv(self, rows, start, end) -> HttpResponse:
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        filename = f"usage-{start.isoformat()}-to-{end.isoformat()}.csv"
        response["Content-Disposition"] = content_disposition_header(True, filename)
        writer = csv.writer(response)
        writer.writerow([label for _name, label in USAGE_CSV_COLUMNS])
        for row in rows:
            writer.writerow([_csv_cell(getattr(row, name)) for name, _label in USAGE_CSV_COLUMNS])
        return response


class FlagStateFilter(admin.SimpleListFilter):
    """Open flags unless asked otherwise: the list is the reviewers' to-do list."""

    title = gettext_lazy("state")
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("cleared", gettext("Cleared")), ("all", gettext("All"))]

    def queryset(self, request, queryset):
        if self.value() == "all":
            return queryset
        return queryset.filter(cleared_at__isnull=self.value() != "cleared")

    def choices(self, changelist):
        yield {
            "selected": self.value() is None,
            "query_string": changelist.get_query_string(remove=[self.parameter_name]),
            "display": gettext("Open"),
        }
        for lookup, title in self.lookup_choices:
            yield {
                "selected": self.value() == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }


@admin.register(Flag)
class FlagAdmin(ReadOnlyAdmin):
    """Flags are made on a conversation's page; here they are listed and cleared."""

    list_display = (
        "created_at",
        "conversation_shown",
        "message_shown",
        "note",
        "flagged_by",
        "state",
    )
    list_filter = (FlagStateFilter, "created_at")
    list_select_related = ("conversation__owner", "flagged_by", "cleared_by")
    search_fields = ("note",)
    fields = (
        "conversation_shown",
        "message_shown",
        "note",
        "flagged_by",
        "created_at",
        "cleared_by",
        "cleared_at",
    )
    readonly_fields = fields
    actions = ["clear"]

    def has_clear_permission(self, request) -> bool:
        return request.user.has_perm("review.change_flag")

    @admin.display(description=gettext_lazy("conversation"), ordering="conversation")
    def conversation_shown(self, flag: Flag) -> str:
        label = gettext("%(conversation)s (of %(owner)s)") % {
            "conversation": _conversation_label(flag.conversation),
            "owner": flag.conversation.owner.get_username(),
        }
        return _conversation_link(flag.conversation_id, label)

    @admin.display(description=gettext_lazy("message"))
    def message_shown(self, flag: Flag) -> str:
        if flag.message_id is None:
            return gettext("the whole conversation")
        url = reverse("admin:conversations_conversation_change", args=[flag.conversation_id])
        return format_html(
            '<a href="{}#message-{}">{}</a>',
            url,
            flag.message_id,
            gettext("message %(number)s") % {"number": flag.message_id},
        )

    @admin.display(description=gettext_lazy("state"))
    def state(self, flag: Flag) -> str:
        if flag.is_open:
            return gettext("open")
        if flag.cleared_by:
            who = flag.cleared_by.get_username()
        else:
            who = gettext("someone since deleted")
        when = date_format(timezone.localtime(flag.cleared_at), "DATETIME_FORMAT")
        return gettext("cleared by %(who)s, %(when)s") % {"who": who, "when": when}

    @admin.action(description=gettext_lazy("Clear the selected flags"), permissions=["clear"])
    def clear(self, request, queryset):
        count = flags.flags_clear(flags=queryset, cleared_by=request.user)
        self.message_user(
            request,
            ngettext("%(count)s flag cleared.", "%(count)s flags cleared.", count)
            % {"count": count},
            messages.SUCCESS,
        )

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<path:object_id>/clear/", view(self.clear_view), name="review_flag_clear"),
            *super().get_urls(),
        ]

    def clear_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_clear_permission(request):
            raise PermissionDenied
        flag = self.get_object(request, unquote(object_id))
        if flag is None:
            raise Http404("No such flag.")
        flags.flags_clear(flags=Flag.objects.filter(pk=flag.pk), cleared_by=request.user)
        self.message_user(request, gettext("The flag is cleared."), messages.SUCCESS)
        return redirect(return_url(request, reverse("admin:review_flag_changelist")))


@admin.register(ReviewAccess)
class ReviewAccessAdmin(AuditRecordAdmin):
    """The audit of staff reading other users' conversations and images: nobody adds, edits
    or deletes its rows in the admin."""

    list_display = (
        "viewed_at",
        "viewer_username",
        "read_shown",
        "conversation_shown",
        "owner_username",
    )
    list_filter = ("viewed_at", "kind")
    search_fields = ("viewer_username", "owner_username", "=conversation_ref", "=attachment_ref")
    fields = list_display
    readonly_fields = fields

    @admin.display(description=gettext_lazy("conversation"), ordering="conversation_ref")
    def conversation_shown(self, access: ReviewAccess) -> str:
        if access.conversation_id is None:
            return gettext("Conversation %(number)s (deleted)") % {
                "number": access.conversation_ref
            }
        label = gettext("Conversation %(number)s") % {"number": access.conversation_ref}
        return _conversation_link(access.conversation_id, label)

    @admin.display(description=gettext_lazy("read"))
    def read_shown(self, access: ReviewAccess) -> str:
        number = {"number": access.attachment_ref}
        if access.kind == ReviewAccess.Kind.IMAGE:
            return gettext("image %(number)s") % number
        if access.kind == ReviewAccess.Kind.THUMBNAIL:
            return gettext("thumbnail of image %(number)s") % number
        return gettext("the conversation")


class ShareStateFilter(admin.SimpleListFilter):
    title = gettext_lazy("state")
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("live", gettext("Live")), ("revoked", gettext("Revoked"))]

    def queryset(self, request, queryset):
        if self.value() in ("live", "revoked"):
            return queryset.filter(revoked_at__isnull=self.value() == "live")
        return queryset


@admin.register(Share)
class ShareAdmin(ReadOnlyAdmin):
    """Share links, listed by their figures: never their token (it would open the link) nor
    what they show, and their conversation by title only while staff may read conversations."""

    list_display = ("__str__", "conversation_shown", "owner", "audience", "created_at", "revoked")
    list_filter = ("audience", ShareStateFilter, "created_at")
    list_select_related = ("conversation__owner",)
    search_fields = ("conversation__owner__username",)
    fields = ("conversation_shown", "owner", "audience", "message_count", "created_at", "revoked")
    readonly_fields = fields
    actions = ["revoke"]

    def has_revoke_permission(self, request) -> bool:
        return request.user.has_perm("conversations.change_share")

    def lookup_allowed(self, lookup, value, request=None):
        if privacy.lookup_reaches_private_field(self.model, lookup):
            return False
        return super().lookup_allowed(lookup, value, request)

    @admin.display(description=gettext_lazy("conversation"), ordering="conversation_id")
    def conversation_shown(self, share: Share) -> str:
        return _conversation_link(share.conversation_id, _conversation_label(share.conversation))

    @admin.display(description=gettext_lazy("owner"), ordering="conversation__owner__username")
    def owner(self, share: Share) -> str:
        return share.conversation.owner.get_username()

    @admin.display(description=gettext_lazy("messages"))
    def message_count(self, share: Share) -> int:
        return len(share.snapshot)

    @admin.display(description=gettext_lazy("revoked"), ordering="revoked_at")
    def revoked(self, share: Share) -> str:
        if share.revoked_at is None:
            return ""
        return date_format(timezone.localtime(share.revoked_at), "SHORT_DATETIME_FORMAT")

    @admin.action(description=gettext_lazy("Revoke the selected links"), permissions=["revoke"])
    def revoke(self, request, queryset):
        live = list(queryset.filter(revoked_at__isnull=True).select_related("conversation__owner"))
        for share in live:
            shares.share_revoke(share=share, user=request.user)
        self.message_user(
            request,
            ngettext("%(count)s link revoked.", "%(count)s links revoked.", len(live))
            % {"count": len(live)},
            messages.SUCCESS,
        )


@admin.register(ShareEvent)
class ShareEventAdmin(AuditRecordAdmin):
    """The audit of share links opened by others than their owners, and revoked: nobody
    adds, edits or deletes its rows in the admin."""

    list_display = (
        "at",
        "kind",
        "actor_shown",
        "share_ref",
        "conversation_shown",
        "owner_username",
    )
    list_filter = ("kind", "at")
    search_fields = ("actor_username", "owner_username", "=share_ref", "=conversation_ref")
    fields = list_display
    readonly_fields = fields

    @admin.display(description=gettext_lazy("who"), ordering="actor_username")
    def actor_shown(self, event: ShareEvent) -> str:
        return event.actor_username or gettext("someone not signed in")

    @admin.display(description=gettext_lazy("conversation"), ordering="conversation_ref")
    def conversation_shown(self, event: ShareEvent) -> str:
        number = {"number": event.conversation_ref}
        if event.conversation_id is None:
            return gettext("Conversation %(number)s (deleted)") % number
        label = gettext("Conversation %(number)s") % number
        return _conversation_link(event.conversation_id, label)


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    list_display = ("model", "input_price_per_million", "output_price_per_million")
