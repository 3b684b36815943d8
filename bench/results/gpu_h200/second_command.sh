# The second command of the 2026-12-04 H200 lease (bench/RESULTS.md, "First GPU run"), run right after
# `STAGE_BUDGET_S=510 bash bench/gpu.sh $OUT`, on the same warm machine: the two checks gpu.sh's then 240 s cap on
# kernel_check cut off, and the inference benchmark through its Python entry (the CLI had failed to import there).
# Its inference part failed on the bf16-cast model (inference_failure.log), since fixed.
S=$(ls -d /tmp/tmp.*/ | head -1); export PYTHONPATH=$S:$PWD PYTHONUNBUFFERED=1; timeout 110 python3 -c "
import torch; from bench import kernel_check as k
d=torch.device('cuda')
for r in k.check_ema(d)+[k.check_model(d)]: print(r['ok'], r['check'], r['precision'], k.describe(r))
" 2>&1 | tee $OUT/ema_model.txt; timeout 150 python3 -c "
from dnahnet.perf.inference import InferenceBench, bench_inference
bench_inference(InferenceBench(configs='bench-transformer,bench-mamba2,bench-hnet-1stage,bench-hnet-2stage', lengths='1024,16384,131072,1048576', out='$OUT/inference', device='cuda', modes=['forward'], repeats=2))
" 2>&1 | tee $OUT/inference.log
