python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site || exit
python3 -m pip install -q --no-deps --no-build-isolation -e . > $OUT/pip.log 2>&1; echo "pip -e: $?"
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore R=$PWD D=$(mktemp -d)
{
python3 -c "import sys; print('start-up hook:', [type(f).__name__ for f in sys.meta_path][:1]); import basicsr; print('nodesr_arch loaded by import basicsr:', 'nodesr_arch' in sys.modules)"
NODESR_TEST_DEVICE=cuda timeout 50 python3 -m pytest -q -p no:cacheprovider tests/test_device.py 2>&1 | tail -2
python3 -m benchmarks.gpu_check tiny-train $D --name g1 --num-gpu 1 > /dev/null; cd $D
echo "== python -m basicsr.train, num_gpu 1"; timeout 60 python3 -m basicsr.train -opt g1.yml 2>&1 | grep -E "Validation val|End of|Error|error:" | tail -4
echo "== --auto_resume"; timeout 60 python3 -m basicsr.train -opt g1.yml --auto_resume --force_yml train:total_iter=6 2>&1 | grep -E "Resuming|End of|Error|error:" | tail -3
echo "== torchrun NCCL, basicsr.train"; timeout 60 python3 -m torch.distributed.run --standalone --nproc_per_node 1 -m basicsr.train -opt g1.yml --launcher pytorch --force_yml name=g2 2>&1 | grep -E "End of|Error|error:|backend" | tail -3
cd $R
for a in "" "--amp bf16"; do echo "== benchmark cuda $a"; timeout 40 python3 -m nodesr_arch.cli benchmark --model NODEVDSR_S --data Set5=.gpudata/Set5 --scales 2 4 --protocol modcrop --device cuda $a --out $D/b$RANDOM 2>&1 | grep -E "NODE|error"; done
} 2>&1 | tee $OUT/recheck.log
