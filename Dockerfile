FROM python:3.12-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY journey_engine journey_engine
COPY profiles profiles
COPY actions actions
RUN pip install --no-cache-dir . && useradd --system --create-home journey
USER journey
ENV JOURNEY_HOST=0.0.0.0 JOURNEY_PORT=8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/readyz').status != 200)"
CMD ["journey-engine", "serve"]
