"""manage.py seed_bench: the data of bench/browse_search.py, and who the benchmark signs in as.

Runs `seed_demo` (10,000 spaces and 100,000 comments by default, under --prefix "bench"; a
rerun only tops up), then picks two of the seeded people:

* the member: owns private spaces and collaborates on the most spaces (the visibility
  filter's worst case). The benchmark signs in as this person, through the login page and
  POST /api/token, with a password set here (seeded people have none; a fresh one each run);
* the owner: owns the most spaces (the profile page's case).

The last line of the output is one JSON object: the member, the password, the owner and facts
about the data (the benchmark prints them). For a database of its own only: the password of
a seeded user is changed.
"""
from __future__ import annotations

import json
import secrets

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.db.models import Count, Q

from spaces.models import Collaborator, Comment, Space, Visibility


class Command(BaseCommand):
    help = ("Seed the browse and search benchmark's data (seed_demo) on a database of its own, set a password "
            "for the user it signs in as, and print the people and facts as one JSON line.")

    def add_arguments(self, parser):
        parser.add_argument("--spaces", type=int, default=10_000)
        parser.add_argument("--comments", type=int, default=100_000)
        parser.add_argument("--prefix", default="bench", help="as seed_demo's --prefix")

    def handle(self, *args, spaces: int, comments: int, prefix: str, **options):
        call_command("seed_demo", spaces=spaces, comments=comments, prefix=prefix, stdout=self.stdout)
        seeded = get_user_model().objects.filter(username__startswith=f"{prefix}-")
        member = (seeded.annotate(collabs=Count("collaborations", distinct=True),
                                  private=Count("spaces", filter=Q(spaces__visibility=Visibility.PRIVATE),
                                                distinct=True))
                  .filter(collabs__gt=0, private__gt=0).order_by("-collabs", "pk").first())
        owner = seeded.annotate(n=Count("spaces")).order_by("-n", "pk").first()
        if member is None or owner is None:
            raise CommandError("too few spaces for a member who owns private spaces and collaborates: "
                               "raise --spaces")
        password = secrets.token_urlsafe(18)
        member.set_password(password)
        member.save(update_fields=["password"])
        labels = Space.objects.filter(label__startswith=f"{prefix}-s")
        facts = {"spaces": labels.count(), "public": labels.filter(visibility=Visibility.PUBLIC).count(),
                 "comments": Comment.objects.count(), "member": member.username,
                 "member_collaborations": Collaborator.objects.filter(user=member).count(),
                 "member_private_spaces": Space.objects.filter(owner=member,
                                                               visibility=Visibility.PRIVATE).count(),
                 "postgres": connection.cursor().connection.server_version}
        self.stdout.write(json.dumps({"member": member.username, "password": password, "owner": owner.username,
                                      "facts": facts}))
