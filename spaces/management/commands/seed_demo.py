"""manage.py seed_demo: fill a database with realistic users, spaces, comments and likes.

For benchmarks and demos of browsing and search (bench/browse_search.py), on a database of
its own: the spaces get host labels and addresses but no containers, routes or revisions,
and a RUNNING or SLEEPING status for realism. A hub whose beat reconciles this database would
publish a route for each of them.

Everything is named from --prefix (users "<prefix>-<name>-<n>", labels "<prefix>-s<n>"), and
generated from --seed in a fixed order, so a rerun with the same arguments only tops up what
is missing and a rerun with another prefix never collides. Rows are written with bulk_create
in batches; timestamps, counters, search documents and trending scores are then set with a
few set-based UPDATEs.
"""
from __future__ import annotations

import random
import re
import time
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.db.models import Count, IntegerField, Max, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from spaces.access.models import Collaborator
from spaces.community.models import Comment, Like
from spaces.community.trending import space_trending_refresh
from spaces.records.models import HostLabel, Space, Visibility
from spaces.records.search import space_search_vector_refresh
from spaces.records.status import SpaceStatus

FIRST_NAMES = ["ada", "alan", "grace", "linus", "margaret", "dennis", "barbara", "ken", "frances", "edsger",
               "radia", "donald", "katherine", "john", "hedy", "tim", "sophie", "yann", "fei", "andrew",
               "joy", "timnit", "yoshua", "geoffrey", "cynthia", "judea", "daphne", "sebastian", "anima",
               "pieter", "chelsea", "oriol", "ilya", "jeff", "rachel", "jeremy", "hamel", "sasha", "omar",
               "lewis", "clem", "julien", "thomas", "victor", "leandro", "merve", "abubakar", "nima", "amy"]

# (title noun phrase, tags, what it does) per kind of demo; titles get a subject in front.
TASKS = [
    ("Image Classifier", ["image-classification", "vision"], "classifies {subject} photos into {n} categories"),
    ("Object Detector", ["object-detection", "vision"], "draws boxes around {subject} in images and video frames"),
    ("Segmentation Demo", ["image-segmentation", "vision"], "segments {subject} pixel by pixel"),
    ("Sentiment Analyzer", ["sentiment-analysis", "nlp", "text-classification"],
     "tells whether {subject} reviews are positive or negative"),
    ("Chatbot", ["chatbot", "nlp", "llm"], "answers questions about {subject} in a chat"),
    ("Summarizer", ["summarization", "nlp"], "summarizes long {subject} documents into a few sentences"),
    ("Translator", ["translation", "nlp"], "translates {subject} texts between English, French and German"),
    ("Speech Recognition", ["speech-recognition", "audio", "asr"], "transcribes spoken {subject} recordings"),
    ("Text to Speech", ["text-to-speech", "audio", "tts"], "reads {subject} texts aloud with a natural voice"),
    ("Image Generator", ["text-to-image", "diffusion", "generative"], "generates pictures of {subject} from prompts"),
    ("Background Remover", ["image-editing", "vision"], "removes the background from {subject} photos"),
    ("OCR Reader", ["ocr", "vision", "document-ai"], "reads the text in scanned {subject} documents"),
    ("Question Answering", ["question-answering", "nlp", "rag"], "finds answers in {subject} manuals"),
    ("Time Series Forecaster", ["forecasting", "time-series", "tabular"], "forecasts {subject} demand for the next weeks"),
    ("Anomaly Detector", ["anomaly-detection", "tabular"], "flags unusual {subject} readings"),
    ("Recommender", ["recommendation", "tabular"], "recommends {subject} from your past choices"),
    ("Music Generator", ["music", "audio", "generative"], "composes short {subject} melodies"),
    ("Code Assistant", ["code", "llm"], "explains and completes {subject} code"),
    ("Pose Estimator", ["pose-estimation", "vision"], "tracks body keypoints of {subject} in video"),
    ("Depth Estimator", ["depth-estimation", "vision", "3d"], "estimates depth maps of {subject} scenes"),
    ("Data Explorer", ["visualization", "dashboard", "tabular"], "plots and filters {subject} datasets interactively"),
    ("Embedding Search", ["embeddings", "semantic-search", "nlp"], "searches {subject} by meaning, not keywords"),
]
SUBJECTS = ["Cat", "Dog", "Bird", "Plant Disease", "Skin Lesion", "Chest X-Ray", "Satellite", "Traffic", "Retail",
            "Movie", "Product", "Legal", "Medical", "Financial", "News", "Recipe", "Wine", "Football", "Weather",
            "Energy", "Solar Panel", "Wildlife", "Fashion", "Car", "Invoice", "Receipt", "Podcast", "Lecture",
            "Customer Support", "Tweet", "Poetry", "Jazz", "Protein", "Molecule", "Galaxy", "Crop", "Bike Sharing"]
MODELS = ["ResNet-50", "ViT-B/16", "CLIP", "YOLOv8", "DETR", "SAM", "BERT", "DistilBERT", "RoBERTa", "T5", "BART",
          "Whisper", "wav2vec 2.0", "Stable Diffusion", "Llama 3", "Mistral 7B", "Phi-3", "XGBoost", "LightGBM",
          "Prophet", "MusicGen", "Bark", "DPT", "MediaPipe", "sentence-transformers", "TrOCR", "Donut"]
EMOJIS = ["🚀", "🐱", "🐶", "🦜", "🌿", "🩺", "🛰️", "🚦", "🛒", "🎬", "⚖️", "💹", "📰", "🍳", "🍷", "⚽", "🌦️", "⚡",
          "🎵", "🤖", "💬", "🔍", "📄", "🎨", "🧬", "🌌", "📈"]
COLORS = ["red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"]
SDKS = [("gradio", 55), ("streamlit", 25), ("static", 10), ("docker", 10)]
STATUSES = [(SpaceStatus.RUNNING, 55), (SpaceStatus.SLEEPING, 35), (SpaceStatus.PAUSED, 4),
            (SpaceStatus.BUILD_ERROR, 3), (SpaceStatus.NO_APP_FILE, 3)]
COMMENTS = [
    "Great demo! Works well on my {subject_lower} pictures.",
    "Which dataset did you fine-tune {model} on?",
    "It fails on very long inputs: `RuntimeError: CUDA out of memory`. Any plans to chunk them?",
    "Thanks for sharing, this **saved me hours**.",
    "Could you add an example with {subject_lower} data from Europe?",
    "The results look better than the original {model} paper, nice.",
    "Is there an API I can call from Python? `gradio_client` worked for me.",
    "Accuracy drops a lot in low light. Maybe augment with darker images?",
    "Love the UI. One suggestion: show the confidence score next to each label.",
    "What license are the weights under?",
    "Latency is about 2 s per request here, acceptable for a demo.",
    "I get a blank page after the app wakes up; a reload fixes it.",
]


def _weighted(rng: random.Random, choices):
    values, weights = zip(*choices)
    return rng.choices(values, weights=weights)[0]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _readme(rng: random.Random, title: str, task: str, subject: str, model: str, what: str, tags) -> str:
    """A README body of a few hundred words, like the ones people write for their demos."""
    n = rng.randint(3, 40)
    paragraphs = [
        f"# {title}",
        f"This demo {what}. It runs {model}, fine-tuned on a public {subject.lower()} dataset of "
        f"{rng.randint(2, 900)}k examples, and serves it with a small web interface.",
        "## How to use\n\nUpload a file or type your input in the box, then press **Submit**. The first "
        "request after the space wakes up takes a few seconds longer while the model loads.",
        f"## Model\n\nThe backbone is {model}. We trained for {rng.randint(2, 60)} epochs with AdamW, a learning "
        f"rate of {rng.choice(['1e-4', '3e-5', '5e-5', '2e-4'])} and a batch size of {rng.choice([8, 16, 32, 64])}. "
        f"On the held-out test split it reaches {rng.randint(70, 99)}% accuracy across {n} classes.",
        f"## Limitations\n\nThe {task.lower()} was evaluated on {subject.lower()} data only; expect weaker "
        "results on other domains, unusual lighting, accents or handwriting. Do not use it for decisions "
        "about people without human review.",
        "## Citation\n\nIf this helps your work, please cite the original model card and link back to this "
        f"space. Keywords: {', '.join(tags)}.",
    ]
    if rng.random() < 0.5:
        paragraphs.insert(3, "## Running locally\n\n```sh\npip install -r requirements.txt\npython app.py\n```")
    return "\n\n".join(paragraphs)


class Command(BaseCommand):
    help = ("Seed users, spaces, comments and likes for benchmarks and demos (a database of its own: "
            "the spaces get no containers or routes). Reruns with the same --prefix top up.")

    def add_arguments(self, parser):
        parser.add_argument("--spaces", type=int, default=10_000)
        parser.add_argument("--comments", type=int, default=100_000)
        parser.add_argument("--users", type=int, default=None, help="default: spaces / 10 (at least 10)")
        parser.add_argument("--likes", type=int, default=None, help="default: 5 per space")
        parser.add_argument("--prefix", default="seed", help="names users and labels; [a-z][a-z0-9]{0,15}")
        parser.add_argument("--seed", type=int, default=1, help="random seed (same seed, same data)")
        parser.add_argument("--batch-size", type=int, default=2000)

    def handle(self, *args, spaces: int, comments: int, users: int | None, likes: int | None, prefix: str,
               seed: int, batch_size: int, **options):
        if not re.fullmatch(r"[a-z][a-z0-9]{0,15}", prefix):
            raise CommandError("--prefix: use a lower-case letter, then up to 15 letters or digits.")
        if min(spaces, comments, batch_size) < 0 or batch_size == 0:
            raise CommandError("--spaces and --comments may not be negative, --batch-size must be positive.")
        users = max(10, spaces // 10) if users is None else users
        likes = 5 * spaces if likes is None else likes
        if users < 1 and spaces:
            raise CommandError("--users: spaces need at least one owner.")
        self.prefix, self.batch = prefix, batch_size
        self.started = timezone.now()
        t0 = time.monotonic()
        people = self._users(users, seed)
        seeded = self._spaces(spaces, people, seed)
        self._likes(likes, seeded, people, seed)
        self._comments(comments, seeded, people, seed)
        self._refresh(seeded)
        self._compact()
        self.stdout.write(self.style.SUCCESS(
            f"seed_demo: {len(people)} users, {len(seeded)} spaces, "
            f"{Like.objects.filter(space_id__in=seeded).count()} likes, "
            f"{Comment.objects.filter(space_id__in=seeded).count()} comments under prefix "
            f"'{prefix}' ({time.monotonic() - t0:.1f} s)"))

    def _say(self, msg: str) -> None:
        self.stdout.write(f"  {msg}")

    # ------------------------------------------------------------------ users
    def _users(self, count: int, seed: int) -> list[int]:
        User = get_user_model()
        rng = random.Random(f"{seed}-users")
        wanted = [f"{self.prefix}-{rng.choice(FIRST_NAMES)}-{i}" for i in range(count)]
        existing = set(User.objects.filter(username__in=wanted).values_list("username", flat=True))
        unusable = make_password(None)  # seeded people never log in with a password
        now = self.started
        new = [User(username=name, password=unusable, email=f"{name}@example.org",
                    date_joined=now - timedelta(days=rng.uniform(1, 900)))
               for name in wanted if name not in existing]
        User.objects.bulk_create(new, batch_size=self.batch)
        self._say(f"users: {len(new)} created, {len(existing)} already there")
        ids = dict(User.objects.filter(username__in=wanted).values_list("username", "pk"))
        return [ids[name] for name in wanted]

    # ------------------------------------------------------------------ spaces
    def _spaces(self, count: int, people: list[int], seed: int) -> list[int]:
        rng = random.Random(f"{seed}-spaces")
        labels = [f"{self.prefix}-s{i}" for i in range(count)]
        existing = dict(Space.objects.filter(label__in=labels).values_list("label", "pk"))
        next_index = (Space.objects.aggregate(m=Max("address_index"))["m"] or 0) + 1
        names_taken: dict[int, set[str]] = {}
        new: list[Space] = []
        for label in labels:
            # Draw every value even for existing rows: the sequence, hence the data, stays the same.
            owner = people[int(len(people) * rng.random() ** 2)]  # a few people own many spaces
            task, task_tags, what = rng.choice(TASKS)
            subject, model = rng.choice(SUBJECTS), rng.choice(MODELS)
            title = f"{subject} {task}" if rng.random() < 0.8 else f"{model} {task}"
            name = _slug(title)
            taken = names_taken.setdefault(owner, set())
            while name in taken:
                name = f"{_slug(title)}-{rng.randint(2, 999)}"
            taken.add(name)
            tags = sorted({*task_tags, _slug(subject), *rng.sample(["demo", "pytorch", "transformers", "onnx",
                                                                    "fine-tuned", "education", "research"], 2)})
            what_text = what.format(subject=subject.lower(), n=rng.randint(2, 40))
            readme = _readme(rng, title, task, subject, model, what_text, tags)
            visibility = Visibility.PRIVATE if rng.random() < 0.15 else Visibility.PUBLIC
            sdk, status = _weighted(rng, SDKS), _weighted(rng, STATUSES)
            emoji, color_from, color_to = rng.choice(EMOJIS), rng.choice(COLORS), rng.choice(COLORS)
            if label in existing:
                continue
            new.append(Space(owner_id=owner, name=name, sdk=sdk, visibility=visibility, title=title, emoji=emoji,
                             color_from=color_from, color_to=color_to,
                             short_description=f"Demo that {what_text} with {model}."[:200],
                             tags=tags, readme=readme, status=status, label=label, address_index=next_index))
            next_index += 1
        with transaction.atomic():
            # Labels are never reused (design.md §3): record them like space_create does.
            HostLabel.objects.bulk_create([HostLabel(label=s.label) for s in new], batch_size=self.batch,
                                          ignore_conflicts=True)
            created = Space.objects.bulk_create(new, batch_size=self.batch)
            new_ids = [s.pk for s in created]
            self._collaborators(created, people, rng)
            # Created over the last 400 days, last updated somewhere since (auto_now fields ignore
            # values given to bulk_create). One UPDATE: both drawn from the same random age.
            with connection.cursor() as cur:
                cur.execute("UPDATE spaces_space AS s SET created_at = now() - v.age, "
                            "updated_at = now() - v.age * random() "
                            "FROM (SELECT id, random() * interval '400 days' AS age FROM spaces_space "
                            "WHERE id = ANY(%s)) AS v WHERE s.id = v.id", [new_ids])
        self._say(f"spaces: {len(created)} created, {len(existing)} already there")
        return sorted([*existing.values(), *new_ids])

    def _collaborators(self, spaces: list[Space], people: list[int], rng: random.Random) -> None:
        rows = []
        for space in spaces:
            # Most private spaces are shared with a colleague or two; some public ones too (editors).
            n = rng.choice([0, 1, 1, 2, 3]) if space.visibility == Visibility.PRIVATE else rng.choice([0] * 4 + [1])
            for user in rng.sample(people, min(n, len(people))):
                if user != space.owner_id:
                    rows.append(Collaborator(space=space, user_id=user, role=rng.choice(["viewer", "editor"])))
        Collaborator.objects.bulk_create(rows, batch_size=self.batch, ignore_conflicts=True)
        self._say(f"collaborators: {len(rows)}")

    # ------------------------------------------------------------------ likes and comments
    def _public_ids(self, seeded: list[int]) -> list[int]:
        # Likes and comments go to public spaces, where strangers may interact.
        return list(Space.objects.filter(pk__in=seeded, visibility=Visibility.PUBLIC)
                    .order_by("pk").values_list("pk", flat=True))

    def _likes(self, target: int, seeded: list[int], people: list[int], seed: int) -> None:
        have = Like.objects.filter(space_id__in=seeded).count()
        public = self._public_ids(seeded)
        missing = min(target, len(public) * len(people)) - have
        if missing <= 0 or not public:
            self._say(f"likes: {have} already there")
            return
        rng = random.Random(f"{seed}-likes-{have}")
        made = 0
        for _ in range(50):  # duplicates (same user, same space) are skipped: draw again
            rows = [Like(space_id=public[int(len(public) * rng.random() ** 3)], user_id=rng.choice(people))
                    for _ in range(missing - made)]
            for start in range(0, len(rows), self.batch):
                Like.objects.bulk_create(rows[start:start + self.batch], ignore_conflicts=True)
            made = Like.objects.filter(space_id__in=seeded).count() - have
            if made >= missing:
                break
        # Likes over the last 60 days, denser recently, so trending differs from "most liked".
        with connection.cursor() as cur:
            cur.execute("UPDATE spaces_like SET created_at = now() - power(random(), 2) * interval '60 days' "
                        "WHERE space_id = ANY(%s) AND created_at >= %s", [seeded, self.started])
        self._say(f"likes: {made} created, {have} already there")

    def _comments(self, target: int, seeded: list[int], people: list[int], seed: int) -> None:
        have = Comment.objects.filter(space_id__in=seeded).count()
        public = self._public_ids(seeded)
        missing = target - have
        if missing <= 0 or not public:
            self._say(f"comments: {have} already there")
            return
        rng = random.Random(f"{seed}-comments-{have}")
        subjects = {s.pk: s for s in Space.objects.filter(pk__in=public).only("pk", "title")}

        def body(space_id: int) -> str:
            title = subjects[space_id].title
            return rng.choice(COMMENTS).format(subject_lower=title.split()[0].lower(), model=rng.choice(MODELS))

        top_count = missing * 4 // 5  # a fifth are replies, one level deep
        tops = []
        for _ in range(top_count):
            space_id = public[int(len(public) * rng.random() ** 2)]  # popular spaces get more
            tops.append(Comment(space_id=space_id, author_id=rng.choice(people), body=body(space_id),
                                hidden=rng.random() < 0.02))
        created: list[Comment] = []
        for start in range(0, len(tops), self.batch):
            created += Comment.objects.bulk_create(tops[start:start + self.batch])
        replies = []
        if created:
            for _ in range(missing - top_count):
                parent = rng.choice(created)
                replies.append(Comment(space_id=parent.space_id, author_id=rng.choice(people), reply_to_id=parent.pk,
                                       body=body(parent.space_id), hidden=rng.random() < 0.02))
        for start in range(0, len(replies), self.batch):
            Comment.objects.bulk_create(replies[start:start + self.batch])
        with connection.cursor() as cur:
            cur.execute("UPDATE spaces_comment SET created_at = now() - power(random(), 1.5) * interval '90 days' "
                        "WHERE space_id = ANY(%s) AND created_at >= %s AND reply_to_id IS NULL",
                        [seeded, self.started])
            cur.execute("UPDATE spaces_comment AS c SET created_at = LEAST(now(), p.created_at + random() * "
                        "interval '3 days') FROM spaces_comment AS p WHERE c.reply_to_id = p.id "
                        "AND c.space_id = ANY(%s) AND c.created_at >= %s", [seeded, self.started])
        self._say(f"comments: {len(created) + len(replies)} created, {have} already there")

    # ------------------------------------------------------------------ derived columns
    def _refresh(self, seeded: list[int]) -> None:
        t = time.monotonic()
        spaces = Space.objects.filter(pk__in=seeded)
        likes = (Like.objects.filter(space=OuterRef("pk")).order_by().values("space")
                 .annotate(n=Count("pk")).values("n"))
        # What comment_count counts (spaces/community/services.py): not hidden, not in a hidden thread.
        shown = (Comment.objects.filter(space=OuterRef("pk"), hidden=False).exclude(reply_to__hidden=True)
                 .order_by().values("space").annotate(n=Count("pk")).values("n"))
        zero = Value(0, output_field=IntegerField())
        spaces.update(like_count=Coalesce(Subquery(likes), zero), comment_count=Coalesce(Subquery(shown), zero))
        space_search_vector_refresh(spaces)
        scored = space_trending_refresh()
        self._say(f"counters, search documents, trending ({scored} scored) in {time.monotonic() - t:.1f} s")

    def _compact(self) -> None:
        """Each UPDATE above left a dead copy of every row it wrote: without them, and with
        fresh statistics, the tables are what a settled hub has (what benchmarks should see).
        VACUUM FULL locks each table for about a second per 10,000 spaces."""
        t = time.monotonic()
        with connection.cursor() as cur:
            for table in ("spaces_space", "spaces_like", "spaces_comment"):
                cur.execute(f"VACUUM (FULL, ANALYZE) {table}")
            for table in ("spaces_collaborator", "spaces_hostlabel", "auth_user"):
                cur.execute(f"ANALYZE {table}")
        self._say(f"vacuum and analyze in {time.monotonic() - t:.1f} s")
