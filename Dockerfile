FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY contracts ./contracts
COPY gateway ./gateway
RUN pip install --no-cache-dir . && useradd --system --uid 10001 gateway && mkdir /data && chown gateway /data
USER gateway
EXPOSE 8080
CMD ["gateway", "serve"]
