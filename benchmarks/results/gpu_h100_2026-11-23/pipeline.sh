#!/bin/bash
# MPRNet stream on the H100 (2026-11-23 lease): runs under setsid; everything goes to /tmp/gw (polled by collect2.sh).
W=/tmp/gw; mkdir -p $W; cd "$(dirname "$0")/.."
exec > $W/pipeline.log 2>&1
set -x
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4
T0=$(date +%s)
python -m pip install -q --no-deps --no-build-isolation -e . ; python -c "import derain" || { mkdir -p /tmp/pp; ln -sfn "$(pwd)" /tmp/pp/derain; export PYTHONPATH=/tmp/pp; }
python -c "import derain, torch; print(torch.__version__, torch.cuda.get_device_name())"
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,power.draw,temperature.gpu --format=csv
B="python benchmarks/continual_synthetic.py --model mprnet --iterations ${ITERS:-1000} --batch-size 16 --lr 0.0002 --gan-iterations 3000 --gan-batch-size 18 --gan-background 6x32 --n-train 200 --n-test 20 --work runs/cs_gpu"
$B --part data --methods sequential
echo "data at $(( $(date +%s) - T0 )) s"
(python -m pytest -q -m gpu tests/test_gpu.py -p no:cacheprovider > $W/gpu_tests.log 2>&1; echo "rc=$?" >> $W/gpu_tests.log) &
for m in ${METHODS:-sequential clgid clgid_oracle}; do $B --part streams --methods $m --out $W/${m}_only > $W/$m.log 2>&1 & done
wait
echo "streams done at $(( $(date +%s) - T0 )) s"
M=$(echo ${METHODS:-sequential clgid clgid_oracle} | tr ' ' ,)
$B --part streams --methods $M --out benchmarks/results/continual_synthetic_mprnet_gpu > $W/report.log 2>&1
echo "all done at $(( $(date +%s) - T0 )) s"
touch $W/DONE
