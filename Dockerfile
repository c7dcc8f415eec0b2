# The xetra report job. Build: scripts/build_image.sh (no Docker daemon needed), or
#   docker build --build-arg BASE_IMAGE=python:3.11-slim-bookworm -t xetra .
# Run:  docker run --rm -v "$PWD/my.yml:/config/xetra.yml:ro" -e AWS_ACCESS_KEY_ID -e AWS_SECRET_ACCESS_KEY xetra
#       (arguments replace the default `--config /config/xetra.yml`, e.g. `--config /config/xetra.yml --to 2024-05-31`)
# AWS Lambda: the same image with the entry point switched to the runtime interface client,
#   --entrypoint '["/opt/venv/bin/python", "-m", "awslambdaric"]' and the command
#   xetra.aws_lambda.lambda_handler (deploy/aws/template.yaml's ImageConfig does this).
ARG BASE_IMAGE=python:3.11-slim-bookworm

# --- builder: the runtime packages pinned in Pipfile.lock (no dev packages), hash-checked ------
FROM ${BASE_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
WORKDIR /build
COPY Pipfile Pipfile.lock deploy/aws/requirements-lambda.txt ./
# pipenv lives only in this stage: it turns the lock's [default] section into requirements.
RUN python -m pip install --no-cache-dir pipenv==2026.10.3 \
 && python -m pipenv requirements --hash > requirements.txt
# A venv without pip: the base's pip installs into it, so no installer ships in the image.
# Trimmed from pyarrow, never loaded by the job (S3 goes through boto3; checked by the imports
# below): its test suite, C++ headers and Cython sources, Arrow Flight (31 MB) and Arrow's own S3
# filesystem (17 MB; pyarrow.fs tolerates its absence).
RUN python -m venv --without-pip /opt/venv \
 && python -m pip --python /opt/venv/bin/python install --no-cache-dir --no-deps \
      --require-hashes -r requirements.txt \
 && python -m pip --python /opt/venv/bin/python install --no-cache-dir --no-deps \
      --require-hashes -r requirements-lambda.txt \
 && for arrow in /opt/venv/lib/python3*/site-packages/pyarrow; do \
      rm -rf "$arrow"/tests "$arrow"/include "$arrow"/*flight* "$arrow"/libarrow_s3.so* \
             "$arrow"/_s3fs.* "$arrow"/*.pyx "$arrow"/*.pxd; \
    done \
 && /opt/venv/bin/python -c "import boto3, yaml, tzdata, pyarrow.compute, pyarrow.csv, pyarrow.fs, pyarrow.parquet"

# --- runtime ------------------------------------------------------------------------------------
FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="xetra" \
      org.opencontainers.image.description="Xetra daily per-ISIN report (report1) from S3 to S3"
# A fixed numeric non-root user, so Kubernetes can verify runAsNonRoot.
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /app --shell /usr/sbin/nologin xetra
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY run.py ./
COPY xetra/ ./xetra/
# Bytecode compiled into the image: PYTHONDONTWRITEBYTECODE and a read-only root would make
# every run compile the job's modules again (~10-15 ms CPU of every start).
RUN python -m compileall -q /app/xetra
USER 10001:10001
# /tmp is the only place the job and the Lambda entry write to (a read-only root works).
RUN python -c "import xetra.cli, xetra.aws_lambda, awslambdaric.bootstrap"
# Credentials come only from the environment or the pod's role (boto3's default chain).
ENTRYPOINT ["/opt/venv/bin/python", "/app/run.py"]
CMD ["--config", "/config/xetra.yml"]
