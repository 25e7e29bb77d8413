"""Fine-tune the trunk's last stage (conv_head, low-rank update) jointly with a shared projection."""
from h import *
import sys, torch.nn.functional as F
R = int(sys.argv[1]) if len(sys.argv) > 1 else 32
STEPS = int(sys.argv[2]) if len(sys.argv) > 2 else 150
NNEG = 768
t = trunk(); bn = t.bn2
Wc = t.conv_head.weight.detach()[:, :, 0, 0]  # 1280 x 320
scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach(); shift = (bn.bias - bn.running_mean * scale).detach()
P = Z["products"].astype(np.float32).reshape(len(PIDS), 320, 49).transpose(0, 2, 1).copy()  # N,49,320
Xp = torch.from_numpy(P)
smaps, masks = {}, {}
cfg = RegionConfig()
for s in SIDS:
    m = Z["scene_" + s].astype(np.float32); H, W = m.shape[1:]
    smaps[s] = torch.from_numpy(m.reshape(320, H * W).T.copy())
    rects, _ = region_layout(H, W, cfg); mk = np.zeros((len(rects), H, W), np.float32)
    for i, (a, b, c, d) in enumerate(rects): mk[i, a:b, c:d] = 1 / ((b - a) * (c - d) * -1)
    masks[s] = torch.from_numpy(mk.reshape(len(rects), -1))
def cells(x, A, B):  # x: ...,320 -> ...,1280 post-act
    z = (x @ Wc.T) * scale + shift
    if A is not None: z = z + (x @ A) @ B
    return z.clamp(0, 6)
def prod_vecs(idx, A, B): return cells(Xp[idx], A, B).mean(1)
def scene_regions(s, A, B):
    c = cells(smaps[s], A, B); return (masks[s] @ c.pow(3)).clamp_min(1e-12).pow(1 / 3)
with torch.no_grad():
    base = torch.cat([prod_vecs(torch.arange(i, min(i + 256, len(PIDS))), None, None) for i in range(0, len(PIDS), 256)]).numpy()
_, mean0 = catalog_space(base)
X0 = center_and_normalize(base, mean0); _, _, vt = np.linalg.svd(X0 - X0.mean(0), full_matrices=False)
basis = torch.from_numpy(vt[:384].T.copy())
def fit(train, steps=STEPS, seed=0):
    g = torch.Generator().manual_seed(seed)
    A = torch.nn.Parameter(torch.randn(320, R, generator=g) * 0.01); B = torch.nn.Parameter(torch.zeros(R, 1280))
    Wq = torch.nn.Parameter(torch.eye(384, 256))
    opt = torch.optim.AdamW([{"params": [A, B], "lr": 1e-3}, {"params": [Wq], "lr": 2e-3}], weight_decay=1e-4)
    m0 = torch.from_numpy(mean0)
    def emb(v): return F.normalize(F.normalize(F.normalize(v, dim=-1) - m0, dim=-1) @ basis @ Wq, dim=-1)
    for it in range(steps):
        b = [train[i] for i in torch.randint(len(train), (32,), generator=g).tolist()]
        pos = np.unique(np.concatenate([REL[s] for s in b]))
        neg = torch.randint(len(PIDS), (NNEG,), generator=g).numpy()
        idx = torch.from_numpy(np.unique(np.concatenate([pos, neg])))
        pe = emb(prod_vecs(idx, A, B))  # n x d
        col = {int(p): j for j, p in enumerate(idx.tolist())}
        loss = 0
        for s in b:
            re = emb(scene_regions(s, A, B))
            logp = torch.log_softmax((re @ pe.T).max(0).values / 0.05, 0)
            loss = loss - logp[[col[int(p)] for p in REL[s]]].mean()
        loss = loss / len(b)
        opt.zero_grad(); loss.backward(); opt.step()
    return A.detach(), B.detach(), Wq.detach()
def score(model, test):
    A, B, Wq = model
    with torch.no_grad():
        pv = torch.cat([prod_vecs(torch.arange(i, min(i + 256, len(PIDS))), A, B) for i in range(0, len(PIDS), 256)]).numpy()
        st, m = catalog_space(pv)
        pe = l2(l2(st @ basis.numpy()) @ Wq.numpy() if False else (st @ basis.numpy()) @ Wq.numpy())
        out = {}
        for s in test:
            q = center_and_normalize(scene_regions(s, A, B).numpy(), m)
            out[s] = (l2((q @ basis.numpy()) @ Wq.numpy()) @ pe.T).max(0)
    return out
t0 = time.time(); r = cv(fit, score); print(fmt(f"lora r{R} {STEPS} steps", metrics(r)), time.time() - t0)
