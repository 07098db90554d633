# One image for every service of the cluster stack: Prefect server and worker, Dask scheduler and workers,
# Ray head and workers all run the same code and pins, so a task behaves the same wherever it lands.
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    VID2VID_PROJECT_DIR=/opt/vid2vid \
    VID2VID_DATA_ROOT=/data/datasets \
    VID2VID_RUNS_ROOT=/data/runs \
    VID2VID_WEIGHTS_DIR=/data/weights \
    PREFECT_HOME=/data/prefect-home \
    PREFECT_SERVER_ANALYTICS_ENABLED=false

RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential curl \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/vid2vid
COPY pyproject.toml README.md ./
COPY flows ./flows
COPY tasks ./tasks
COPY models ./models
COPY storage ./storage
COPY review ./review
COPY configs ./configs
COPY prefect.yaml ./
RUN pip install -e . && pip install --force-reinstall --no-deps "opencv-contrib-python-headless==5.0.0.93"

CMD ["vid2vid", "--help"]
