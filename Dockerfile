# One image for every fuli process: `fuli serve points|rewards|tiers`, `fuli worker`, `fuli migrate`.
# In the cluster FULI_DATABASE_URL and FULI_REDIS_URL point at external servers, so the embedded
# servers that come with the dependencies are never started.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    FULI_HOST=0.0.0.0 FULI_PORT=8000
WORKDIR /app
COPY pyproject.toml README.md ./
COPY proto ./proto
COPY services ./services
RUN pip install . && useradd --system --uid 10001 --no-create-home fuli
USER 10001
EXPOSE 8000
CMD ["fuli", "serve", "points"]
