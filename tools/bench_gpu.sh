#!/usr/bin/env bash
# GPU numbers of docs/benchmarks.md "Node vs pipeline" (issue 9), rerunnable in one command
# ON the lent GPU machine (16-core H200 host, Python 3.12 in /opt/torch/.venv, no ROS),
# from the repository root:
#
#   tools/bench_gpu.sh STAGE_DIR OUT_DIR [DURATION_S]
#
# STAGE_DIR holds what the machine lacks (see ../shared/device/README.md):
#   ros312.tgz + stage-ros.sh   the ROS 2 Kilted runtime and this package's colcon build for
#                               Python 3.12 (here: make test-py312, then ../shared/device/
#                               make-ros-bundle.sh .venv-py312 .build/py312/colcon/install
#                               STAGE_DIR/ros312.tgz)
#   onnxruntime-gpu 1.31.1      the wheel, or its parts already copied to /root/c/part* by
#                               earlier runs (a run carries at most 64 MiB)
#   segformer_b0_random_1024.onnx, solidWhiteRight.mp4   from ../shared
#
# Runs bench_ros with pipeline: gpu and ONNX Runtime's CUDA provider: transport floor,
# standalone pipeline (one frame at a time and two in flight), the node mask only / full /
# 200 Hz flood at 1920x1080 ("one"), then 2 and 4 cameras ("cams"), the fp16 model if
# STAGE_DIR has segformer_b0_random_1024_fp16.onnx ("fp16"), a dynamic-batch export with 2
# and 4 cameras if it has segformer_b0_random_1024_dynbatch.onnx ("dyn"), and the CPU
# pipeline with 8 ONNX Runtime threads ("cpu"); BENCH_GPU_PARTS picks some (default: all).
# Each report lands in OUT_DIR.
set -eo pipefail
stage=${1:?usage: $0 STAGE_DIR OUT_DIR [DURATION_S]}
out=${2:?usage: $0 STAGE_DIR OUT_DIR [DURATION_S]}
duration=${3:-10}
stage=$(cd "$stage" && pwd)
mkdir -p "$out"

bash "$stage/stage-ros.sh" "$stage/ros312.tgz"
export SEGFORMER_ROS_VENV=/opt/torch/.venv SEGFORMER_ROS_INSTALL=/root/ros-install
# shellcheck disable=SC1091
source tools/ros_env.sh

if [[ ! -d /root/ortgpu/onnxruntime ]]; then
  wheel=$(ls "$stage"/onnxruntime_gpu-*.whl 2>/dev/null | head -1 || true)
  if [[ -z $wheel ]]; then
    wheel=/root/onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl
    cat /root/c/part* > "$wheel"
  fi
  python3 -m pip install -q --no-index --no-deps --target /root/ortgpu "$wheel"
fi
export PYTHONPATH=/root/ortgpu:$PYTHONPATH
LD_LIBRARY_PATH=$(ls -d /opt/torch/.venv/lib/python3.12/site-packages/nvidia/*/lib | tr '\n' ':')${LD_LIBRARY_PATH:-}
export LD_LIBRARY_PATH
python3 -c 'import onnxruntime as o; p = o.get_available_providers(); print(p); assert "CUDAExecutionProvider" in p'
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || true
uptime

parts=${BENCH_GPU_PARTS:-one cams fp16 dyn cpu}
common=(--video "$stage/solidWhiteRight.mp4" --params config/segformer_cityscapes.yaml
        --set pipeline=gpu --set onnxruntime_provider=cuda --no-write-docs
        --duration "$duration")
fp32=(--model "$stage/segformer_b0_random_1024.onnx")
if [[ $parts == *one* ]]; then
  python3 -m benchmarks.bench_ros "${common[@]}" "${fp32[@]}" \
    --scenarios transport,pipeline,mask_only,full,flood --out "$out/one" 2>&1 | tee "$out/one.log"
fi
if [[ $parts == *cams* ]]; then
  for n in 2 4; do
    python3 -m benchmarks.bench_ros "${common[@]}" "${fp32[@]}" --cameras "$n" \
      --scenarios pipeline,mask_only --out "$out/cams$n" 2>&1 | tee "$out/cams$n.log"
  done
fi
# fp16: the same model converted by benchmarks/fp16_model.py (fp16 inputs and logits; the
# GPU kernels read and write fp16), i.e. what an fp16 engine's I/O looks like.
if [[ $parts == *fp16* && -f $stage/segformer_b0_random_1024_fp16.onnx ]]; then
  python3 -m benchmarks.bench_ros "${common[@]}" \
    --model "$stage/segformer_b0_random_1024_fp16.onnx" \
    --scenarios transport,pipeline,mask_only,full,flood --out "$out/fp16" 2>&1 | tee "$out/fp16.log"
  python3 -m benchmarks.bench_ros "${common[@]}" \
    --model "$stage/segformer_b0_random_1024_fp16.onnx" --cameras 4 \
    --scenarios pipeline,mask_only --out "$out/fp16_cams4" 2>&1 | tee "$out/fp16_cams4.log"
fi
# A dynamic-batch export of the same architecture (segformer-ros-export --dynamic-batch;
# a stage part may have left it in /root/c): ONNX Runtime inference alone at batch 1-4, the
# sizes in turn in one session and in one session per size (the fixed model with and
# without ORT's CUDA graph beside it), then 2 and 4 cameras sharing inferences.
dyn=$stage/segformer_b0_random_1024_dynbatch.onnx
[[ -f $dyn ]] || dyn=/root/c/segformer_b0_random_1024_dynbatch.onnx
if [[ $parts == *dyn* && -f $dyn ]]; then
  { python3 -m benchmarks.ort_cuda_probe "$stage/segformer_b0_random_1024.onnx" --cuda-graph
    python3 -m benchmarks.ort_cuda_probe "$dyn" --batches 1,2,3,4
    python3 -m benchmarks.ort_cuda_probe "$dyn" --batches 4,1,3,2 --alternate \
      --conv-search=EXHAUSTIVE,HEURISTIC
    python3 -m benchmarks.ort_cuda_probe "$dyn" --batches 4,1,3,2 --alternate --session-per-size
  } 2>&1 | tee "$out/ort_probe.jsonl" || true
  for n in 4 2; do
    python3 -m benchmarks.bench_ros "${common[@]}" --model "$dyn" --cameras "$n" \
      --scenarios pipeline,mask_only --out "$out/dyn_cams$n" 2>&1 | tee "$out/dyn_cams$n.log"
  done
fi
# The CPU pipeline on the 16-core host (the first table): bundled DeepLab, ONNX
# Runtime CPU with 8 threads, one frame at a time (the default there) and two in flight.
if [[ $parts == *cpu* ]]; then
  for k in 1 2; do
    python3 -m benchmarks.bench_ros --no-write-docs --duration "$duration" \
      --set pipeline=cpu --set onnxruntime_provider=cpu --set num_threads=8 \
      --set frames_in_flight=$k --scenarios transport,pipeline,mask_only,flood \
      --out "$out/cpu_inflight$k" 2>&1 | tee "$out/cpu_inflight$k.log"
  done
fi
uptime
