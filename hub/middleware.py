"""The hub's own middleware: WhiteNoise without leaving the event loop, and the page language.

WhiteNoise's static files, without taking every request off the event loop.

WhiteNoise's middleware is synchronous only. One such middleware makes Django run the whole
chain of every request, async views included, inside a thread of its own under uvicorn: a
request held while a space wakes, or a log stream open for an hour, then blocks a thread for
all that time (README "Security: waiting requests are bounded"). This subclass is the same
middleware, able to run asynchronously: it answers static files as WhiteNoise does and awaits
everything else.
"""
from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.middleware.locale import LocaleMiddleware
from django.utils import translation
from whitenoise.middleware import WhiteNoiseMiddleware


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    sync_capable = True
    async_capable = True

    def __init__(self, get_response=None, *args, **kwargs) -> None:
        super().__init__(get_response, *args, **kwargs)
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def _static_file(self, path: str):
        return self.find_file(path) if self.autorefresh else self.files.get(path)

    def __call__(self, request):
        if self._async:
            return self.__acall__(request)
        return super().__call__(request)

    async def __acall__(self, request):
        # With autorefresh (finders, DEBUG) the lookup reads the disk: off the event loop.
        if self.autorefresh:
            static_file = await sync_to_async(self._static_file, thread_sensitive=False)(request.path_info)
        else:
            static_file = self._static_file(request.path_info)
        if static_file is not None:
            return self.serve(static_file, request)
        return await self.get_response(request)


class PageLocaleMiddleware(LocaleMiddleware):
    """Django's LocaleMiddleware (the cookie, then Accept-Language) for pages; the API (/api/)
    always answers in English, Django's and DRF's own messages included: clients read `code`,
    and a `detail` does not change with the caller's browser (README "Languages")."""

    def process_request(self, request):
        if request.path_info.startswith("/api/"):
            translation.activate("en")
            request.LANGUAGE_CODE = "en"
            return None
        return super().process_request(request)
