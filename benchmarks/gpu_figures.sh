#!/usr/bin/env bash
# The GPU figures of issues 11, 15, 16 and 18 in one run, for a lent GPU machine whose python3 has
# torch but not this project's other packages. From the repo root, first (on a machine with PyPI):
#   mkdir -p .whl/site/face_recognition_models/models
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d .whl pydantic==2.14.4 pydantic-core==2.50.5 annotated-types typing-inspection dlib-bin av
#   cp .venv/lib/python3*/site-packages/face_recognition_models/__init__.py .whl/site/face_recognition_models/
#   cp .venv/lib/python3*/site-packages/face_recognition_models/models/shape_predictor_5_face_landmarks.dat \
#      .whl/site/face_recognition_models/models/      # the 5-point model only: the whole package is 126 MB
# then carry `.whl` (git-excluded) and run `bash benchmarks/gpu_figures.sh`. About 150 s on an H200.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/.whl/site:$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp}
nvidia-smi -L; nproc
echo "== bench_visual preprocess (issue 11)"
timeout 60 python3 benchmarks/bench_visual.py --part preprocess --device cuda 2>&1 | tee "$OUT/bench_preprocess.txt"
echo "== bench_trial scales (issue 18)"
timeout 170 python3 benchmarks/bench_trial.py --device cuda --skip-throughput --scales 1,4 \
    --pairs basic:spectrogram --demo /tmp/demo 2>&1 | grep -v "planted stores" | tee "$OUT/bench_trial.txt"
echo "== bench_finetune (issue 16)"
timeout 110 python3 benchmarks/bench_finetune.py --device cuda --backbone ir50 2>&1 | tail -30 | tee "$OUT/bench_finetune.txt"
echo "== bench_visual gpu (issue 15)"
timeout 180 python3 benchmarks/bench_visual.py --part gpu --device cuda --backbone resnet18 --backbone ir50 2>&1 \
    | tail -40 | tee "$OUT/bench_visual_gpu.txt"
