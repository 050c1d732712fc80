# The intake-sim listener, for docker-compose.yml (which pairs it with PostgreSQL).
FROM python:3.12-slim

WORKDIR /app
COPY pyproject.toml setup.py README.md ./
COPY simulator ./simulator
COPY fixtures ./fixtures
RUN pip install --no-cache-dir ".[postgresql]" \
    && useradd --system --no-create-home intake
USER intake

EXPOSE 2525
# docker-compose.yml replaces this with `db upgrade` followed by `serve --db ...`.
CMD ["intake-sim", "serve", "--host", "0.0.0.0", "--port", "2525"]
