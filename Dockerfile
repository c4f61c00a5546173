FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY config config
COPY members members
COPY scoring scoring
COPY reviews reviews
COPY publicity publicity
RUN pip install --no-cache-dir .
COPY . .
RUN DJANGO_SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput
RUN useradd --create-home app && mkdir -p /data/media /data/beat && chown -R app /data
USER app
EXPOSE 8000
