"""The base of every API view: DRF's APIView with the token-scope check (design.md §4).

Kept apart from auth.py: DRF reads the authentication classes (auth.py) when rest_framework.views
is imported, so auth.py must not import it.
"""
from __future__ import annotations

from rest_framework.views import APIView

from spaces.accounts.auth import TokenScopeAllows


class BaseApi(APIView):
    permission_classes = [TokenScopeAllows]
