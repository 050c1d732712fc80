# The intake-sim listener and web view, for docker-compose.yml (which pairs it with
# PostgreSQL). Alone, it keeps its SQLite database in the /data volume:
#   docker run -p 127.0.0.1:2525:2525 -p 127.0.0.1:8080:8080 -v intake-data:/data intake-sim
FROM python:3.12-slim

WORKDIR /app
COPY pyproject.toml setup.py README.md ./
COPY simulator ./simulator
COPY fixtures ./fixtures
# /app stays root's and read-only to the listener; everything it writes (the SQLite
# database and its -wal/-shm files, a spool) goes to /data, which user intake owns.
RUN pip install --no-cache-dir ".[postgresql]" \
    && useradd --system --no-create-home intake \
    && mkdir /data && chown intake:intake /data
VOLUME /data
WORKDIR /data
ENV INTAKE_SIM_DB=sqlite:////data/intake.db
USER intake

EXPOSE 2525 8080
# docker-compose.yml replaces this with `db upgrade` followed by `serve --db <PostgreSQL>`.
CMD ["intake-sim", "serve", "--host", "0.0.0.0", "--port", "2525", "--web-host", "0.0.0.0", "--web-port", "8080"]
