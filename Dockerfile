# One image for every Sluice service and the dashboard; the Kubernetes manifests in deploy/ pick
# the entry point by command (sluice-staging, sluice-scheduler, sluice-worker, sluice-exporter,
# sluice-dashboard, sluice).
#
#   docker build -t sluice:0.1.0 .
#   docker build --build-arg STORE_PACKAGES="gcsfs" -t sluice:0.1.0 .   # a GCS object store
# Debian bookworm: the runtime stage installs its libgl1 and libglib2.0-0 by those names.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# fsspec backends for the object store named by SLUICE_STORE_URL (s3fs for s3://, gcsfs for
# gs://, adlfs for az://); empty for a file:// store only.
ARG STORE_PACKAGES="s3fs"
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
COPY services ./services
COPY dashboard ./dashboard
RUN python -m venv /opt/sluice \
 && /opt/sluice/bin/pip install ".[dashboard]" ${STORE_PACKAGES} \
 && /opt/sluice/bin/pip check

FROM ${PYTHON_IMAGE}
# OpenCV (opencv-python, the build Sluice's model packages require) loads libGL and GLib.
RUN apt-get update \
 && apt-get install --yes --no-install-recommends libgl1 libglib2.0-0 \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 sluice \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp \
      --shell /usr/sbin/nologin sluice
COPY --from=build /opt/sluice /opt/sluice
# The root filesystem is read-only in the cluster: HOME and every cache point at /tmp, an emptyDir.
ENV PATH=/opt/sluice/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib
USER 10001:10001
WORKDIR /tmp
CMD ["sluice", "--help"]
