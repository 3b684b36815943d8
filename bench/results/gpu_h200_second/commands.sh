# The three commands of the second H200 lease (2026-12-04), from the repo root, with .whl/ carried (bench/gpu.sh's
# head says what it holds). bench/RESULTS.md, "Second GPU run", reports what they measured.

# 1. commit ddf84af: paper-width training steps, H-Nets against Mamba-2 interleaved, the inference benchmark
STAGE_BUDGET_S=530 STAGES=pairs,paper,inference STAGE_S_pairs=200 STAGE_S_paper=220 bash bench/gpu.sh $OUT 2>&1 | tee $OUT/gpu.log

# 2. ddf84af with bench/forward_profile.py as first written (its "device ms" per part was the part's span on the
#    GPU's timeline; 8647ab9 committed it, a later commit split host, kernel and span). The 1,048,576 run was cut
#    at its 100 s after bench-mamba2.
S=/tmp/site; mkdir -p $S; python3 -m pip install -q --no-index --no-deps --no-compile --target $S .whl/*.whl
tar xzf .whl/mamba_ssm-*.tar.gz -C $S --strip-components=1 --wildcards '*/mamba_ssm/*'; export PYTHONPATH=$S:$PWD PYTHONUNBUFFERED=1
for L in 1048576 16384; do timeout 100 python3 -m bench.forward_profile --device cuda --threads 8 --top 12 \
  --configs bench-mamba2,bench-hnet-1stage-mamba2-m1,bench-hnet-1stage-swa --length $L --out $OUT/p$L; done

# 3. commit 8647ab9 (an H-Net's main network on the Triton scan), same set-up as 2:
timeout 100 python3 bench/inference_pairs.py --device cuda --segment 0 --repeats 10 --min-seconds 0 --threads 8 \
  --configs bench-mamba2,bench-hnet-1stage-mamba2-m1,bench-hnet-1stage-swa --lengths 1024,16384,1048576 --out $OUT/pairs
timeout 40 python3 -c "
import torch, dnahnet.nn.mamba2 as mm
from dnahnet.config import model_config_from_preset as c
from dnahnet.nn.hnet import HNetLM
torch.manual_seed(0); net=HNetLM(c('cpu-hnet-mamba2')).cuda().eval()
ids=torch.randint(0,4,(4,2048),device='cuda')
with torch.no_grad():
  a=net(ids); mm.USE_KERNELS=False; b=net(ids)
print('main on Triton vs pure fp32: logits rel', ((a.logits-b.logits).norm()/b.logits.norm()).item(), 'boundaries differ', (a.routing[0].boundary_mask!=b.routing[0].boundary_mask).sum().item())
"
# printed: main on Triton vs pure fp32: logits rel 1.0226301128568593e-05 boundaries differ 0
