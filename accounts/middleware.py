from asgiref.sync import iscoroutinefunction
from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.decorators import sync_and_async_middleware


def _needs_setup_redirect(request: HttpRequest, user_is_anonymous: bool) -> bool:
    return user_is_anonymous and request.path not in {
        reverse("setup"),
        reverse("healthz"),
        reverse("metrics"),
    }


@sync_and_async_middleware
def first_run_setup_middleware(get_response):
    """While there are no users, send every visitor to the setup page: the first admin's
    form on a fresh install, or, once an admin has existed, what to do (accounts/setup.py).

    Only anonymous requests pay for the check: a signed-in user proves users exist.
    """
    user_model = get_user_model()

    if iscoroutinefunction(get_response):

        async def middleware(request: HttpRequest) -> HttpResponse:
            user = await request.auser()
            if _needs_setup_redirect(request, user.is_anonymous) and not (
                await user_model.objects.aexists()
            ):
                return redirect("setup")
            return await get_response(request)

    else:

        def middleware(request: HttpRequest) -> HttpResponse:
            if (
                _needs_setup_redirect(request, request.user.is_anonymous)
                and not user_model.objects.exists()
            ):
                return redirect("setup")
            return get_response(request)

    return middleware
