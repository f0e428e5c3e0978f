# syntax=docker/dockerfile:1
# Two stages: "build" installs the Python packages into /venv; "runtime" copies only that venv and
# the code, collects static files and runs as an unprivileged user.
#
# PyTorch: by default pip takes torch from PyPI, whose Linux wheel is the CUDA build (it pulls
# ~3 GB of nvidia-* libraries a CPU server never uses). Where PyTorch's own index is reachable, build
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu .
# to install the CPU-only wheels of the same pinned versions instead (see README, "Production").
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ARG TORCH_INDEX_URL=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /venv
ENV PATH=/venv/bin:$PATH
COPY requirements.txt /tmp/requirements.txt
# torch/torchvision first from the chosen index; requirements.txt then finds its pins satisfied
# ("2.14.1+cpu" matches "==2.14.1").
RUN if [ -n "$TORCH_INDEX_URL" ]; then \
        pip install --index-url "$TORCH_INDEX_URL" \
            "$(grep -E '^torch==' /tmp/requirements.txt)" "$(grep -E '^torchvision==' /tmp/requirements.txt)"; \
    fi \
 && pip install -r /tmp/requirements.txt

FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/venv/bin:$PATH \
    PORTAL_VAR_DIR=/data PRIVATE_MEDIA_ROOT=/data/private-media STATIC_ROOT=/app/staticfiles \
    LOG_FORMAT=json
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin portal
COPY --from=build /venv /venv
WORKDIR /app
COPY . .
# Static files are collected into the image (read-only at run time). The key only lets settings load.
# The shipped checkpoints' ONNX exports (ML_RUNTIME=onnx) are made here too: /app is read-only at run time.
RUN SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput \
 && for checkpoint in ml/checkpoints/*.pt; do python -m ml export-onnx --checkpoint "$checkpoint"; done \
 && mkdir -p /data/private-media && chown -R portal:portal /data && chmod 700 /data/private-media
USER portal
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"
# WEB_CONCURRENCY (gunicorn's own variable) sets the number of web processes.
CMD ["gunicorn", "portal.wsgi", "--bind", "0.0.0.0:8000", "--access-logfile", "-", "--timeout", "60"]
