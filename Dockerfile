FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY stream_etl stream_etl
COPY connectors connectors
COPY topologies topologies
RUN pip install --no-cache-dir '.[kafka,delta]'
USER nobody
ENTRYPOINT ["stream-etl"]
