"""Thumbs up or down, with a note, on a reply of one's own conversation. Off the chat path,
so sync."""

from asgiref.sync import async_to_sync
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils.translation import gettext
from django.views.decorators.http import require_POST

from conversations import feedback, frames
from conversations.lookups import conversation_for_user

FRAGMENT = "conversations/partials/_message.html#feedback"


@require_POST
def reply_feedback(request: HttpRequest, conversation_id: int, message_id: int) -> HttpResponse:
    """A thumb pressed (the same again clears it), or the note saved with the rating."""
    conversation = conversation_for_user(request.user, conversation_id)
    reply = conversation.messages.filter(pk=message_id).first()
    if reply is None or not reply.accepts_feedback:
        raise Http404("No such finished reply of yours.")
    rating = feedback.RATINGS.get(request.POST.get("rating", ""))
    if rating is None:
        return HttpResponseBadRequest(gettext("Choose thumbs up or thumbs down."))
    context = {"message": reply}
    if "note" in request.POST:
        note = request.POST["note"]
        try:
            context["feedback"] = feedback.feedback_set(
                message=reply, user=request.user, rating=rating, note=note
            )
        except feedback.FeedbackRefused as refusal:
            current = reply.feedback.filter(user=request.user).first()
            context.update(
                feedback=current,
                feedback_error=str(refusal),
                note_draft=note,
                posted_rating=request.POST["rating"],
            )
            template = FRAGMENT if request.htmx else "conversations/feedback_note.html"
            return render(request, template, context | {"note_open": True}, status=422)
    else:
        stored = feedback.feedback_toggle(message=reply, user=request.user, rating=rating)
        # A thumb down asks what was wrong.
        note_open = stored is not None and stored.rating == stored.Rating.DOWN and not stored.note
        context.update(feedback=stored, note_open=note_open)
    # The conversation's other tabs show it too; a page whose socket just connected is sent
    # this after its stored state, which may have been read before the change.
    shown = {"message": reply, "feedback": context["feedback"], "feedback_oob": True}
    async_to_sync(frames.publish)(conversation.pk, render_to_string(FRAGMENT, shown))
    if request.htmx:
        return render(request, FRAGMENT, context)
    return redirect(f"{conversation.get_absolute_url()}#{reply.dom_id}")
