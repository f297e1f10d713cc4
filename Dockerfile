# The hub image: web, both Celery workers and beat run from it (docker-compose.yml).
# Starts FROM the locally made Debian base (scripts/base-image.sh), so it builds with no registry.
ARG BASE_IMAGE=demohub/base:bookworm

# --- deps: the virtualenv. The only stage that sees the optional CA bundle. -------------------
FROM ${BASE_IMAGE} AS deps
# `.buil[d]` matches the directory when it exists (scripts/up.sh copies $BUILD_CA_BUNDLE to
# .build/ca.crt) and nothing when it does not, so the image also builds from a bare checkout.
COPY requirements.txt .buil[d] /tmp/deps/
RUN python3 -m venv /opt/venv \
 && if [ -s /tmp/deps/ca.crt ]; then export PIP_CERT=/tmp/deps/ca.crt; fi \
 && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check -q -r /tmp/deps/requirements.txt

# --- src: the app files (.dockerignore lists what may enter), minus the build-only bits. ------
# The message catalogs are compiled here (gettext's msgfmt, this stage only): .mo files are
# generated, never committed (README "Languages").
FROM deps AS src
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gettext >/dev/null \
 && rm -rf /var/lib/apt/lists/*
COPY . /src/
RUN cd /src && rm -rf .build requirements.txt /tmp/deps \
 && /opt/venv/bin/django-admin compilemessages >/dev/null \
 && find /src -name '*.po' -path '*/LC_MESSAGES/*' | sed 's/\.po$/.mo/' | xargs ls >/dev/null

# --- final -------------------------------------------------------------------------------------
FROM ${BASE_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=hub.settings \
    DATA_DIR=/var/lib/demohub
# git: every space is a git repository served by `git http-backend` (spaces/repos/git_http.py).
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends git >/dev/null \
 && rm -rf /var/lib/apt/lists/* \
 && git --exec-path >/dev/null
# A fixed uid, so files in the shared data volume keep one owner across rebuilds.
# The data dir is created with its layout: Docker copies it (and its owner) into an empty named
# volume on first mount, and a non-empty volume is never re-owned by another image's mount.
RUN groupadd --gid 10001 demohub \
 && useradd --uid 10001 --gid demohub --create-home --home-dir /home/demohub --shell /usr/sbin/nologin demohub \
 && mkdir -p /app/staticfiles /run/demohub \
        /var/lib/demohub/snapshots /var/lib/demohub/repos /var/lib/demohub/sites /var/lib/demohub/builds /var/lib/demohub/proxy/routes \
 && chown -R demohub:demohub /app/staticfiles /var/lib/demohub \
 && chmod 1777 /run/demohub
COPY --from=deps /opt/venv /opt/venv
COPY --from=src /src/ /app/
WORKDIR /app
USER demohub
CMD ["uvicorn", "hub.asgi:application", "--host", "127.0.0.1", "--port", "8000"]
