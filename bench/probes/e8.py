"""Direction 1 with composites: fine-tune the trunk's last stage (low-rank update of conv_head, rank R) jointly
with a shared projection, on the labels *and* the composite pastes (Lite0 pre-head cells of each pasted box,
``dump_lite2.py``). R=0 trains the projection alone with the same loss and steps: the paired baseline."""
import sys, torch.nn.functional as F
from h import *

R = int(sys.argv[1]) if len(sys.argv) > 1 else 32
STEPS = int(sys.argv[2]) if len(sys.argv) > 2 else 200
N = int(sys.argv[3]) if len(sys.argv) > 3 else 10
NNEG, CBATCH, T = 768, 128, 0.05
t = trunk(); bn = t.bn2
Wc = t.conv_head.weight.detach()[:, :, 0, 0]  # 1280 x 320
scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach(); shift = (bn.bias - bn.running_mean * scale).detach()
Xp = torch.from_numpy(Z["products"].astype(np.float32).reshape(len(PIDS), 320, 49).transpose(0, 2, 1).copy())
cfg = RegionConfig()
smaps, masks = {}, {}
for s in SIDS:
    m = Z["scene_" + s].astype(np.float32); H, W = m.shape[1:]
    smaps[s] = torch.from_numpy(m.reshape(320, H * W).T.copy())
    rects, _ = region_layout(H, W, cfg); mk = np.zeros((len(rects), H, W), np.float32)
    for i, (a, b, c, d) in enumerate(rects): mk[i, a:b, c:d] = 1.0 / ((b - a) * (d - c))
    masks[s] = torch.from_numpy(mk.reshape(len(rects), -1))
C = np.load(f"{PROBE_DIR}/composites_dual_{N}.npz")
Crow, Csrc, Coff = C["rows"], C["src"], C["offsets"]
Ccells = torch.from_numpy(C["cells"].astype(np.float32))


def cells(x, A, B):  # x: ...,320 -> ...,1280 after conv_head, BN, ReLU6
    z = (x @ Wc.T) * scale + shift
    if A is not None: z = z + (x @ A) @ B
    return z.clamp(0, 6)


def gem(c): return c.clamp_min(1e-6).pow(3).mean(0).pow(1 / 3)
def prod_vecs(idx, A, B): return cells(Xp[idx], A, B).mean(1)
def scene_regions(s, A, B): return (masks[s] @ cells(smaps[s], A, B).pow(3)).clamp_min(1e-12).pow(1 / 3)


with torch.no_grad():
    base = torch.cat([prod_vecs(torch.arange(i, min(i + 256, len(PIDS))), None, None) for i in range(0, len(PIDS), 256)]).numpy()
_, mean0 = catalog_space(base)
X0 = center_and_normalize(base, mean0); _, _, vt = np.linalg.svd(X0 - X0.mean(0), full_matrices=False)
basis = torch.from_numpy(vt[:384].T.copy()); m0 = torch.from_numpy(mean0)


def fit(train, seed=0):
    g = torch.Generator().manual_seed(seed)
    params = []
    A = B = None
    if R:
        A = torch.nn.Parameter(torch.randn(320, R, generator=g) * 0.01); B = torch.nn.Parameter(torch.zeros(R, 1280))
        params.append({"params": [A, B], "lr": 1e-3})
    Wq = torch.nn.Parameter(torch.eye(384, 256)); params.append({"params": [Wq], "lr": 2e-3})
    opt = torch.optim.AdamW(params, weight_decay=1e-4)
    tr = set(train); comp_idx = np.array([i for i, s in enumerate(Csrc) if s in tr])

    def emb(v): return F.normalize(F.normalize(F.normalize(v, dim=-1) - m0, dim=-1) @ basis @ Wq, dim=-1)
    for it in range(STEPS):
        b = [train[i] for i in torch.randint(len(train), (32,), generator=g).tolist()]
        ci = comp_idx[torch.randint(len(comp_idx), (CBATCH,), generator=g).numpy()]
        pos = np.unique(np.concatenate([REL[s] for s in b] + [Crow[ci]]))
        neg = torch.randint(len(PIDS), (NNEG,), generator=g).numpy()
        idx = torch.from_numpy(np.unique(np.concatenate([pos, neg])))
        pe = emb(prod_vecs(idx, A, B))
        col = {int(p): j for j, p in enumerate(idx.tolist())}
        loss = 0
        for s in b:
            logp = torch.log_softmax((emb(scene_regions(s, A, B)) @ pe.T).max(0).values / T, 0)
            loss = loss - logp[[col[int(p)] for p in REL[s]]].mean()
        loss = loss / len(b)
        q = emb(torch.stack([gem(cells(Ccells[Coff[i]:Coff[i + 1]], A, B)) for i in ci]))
        target = torch.tensor([col[int(p)] for p in Crow[ci]])
        loss = loss + F.cross_entropy(q @ pe.T / T, target)
        opt.zero_grad(); loss.backward(); opt.step()
    return A, B, Wq.detach()


def score(model, test):
    A, B, Wq = model
    with torch.no_grad():
        pv = torch.cat([prod_vecs(torch.arange(i, min(i + 256, len(PIDS))), A, B) for i in range(0, len(PIDS), 256)]).numpy()
        st, m = catalog_space(pv)
        pe = l2((st @ basis.numpy()) @ Wq.numpy())
        return {s: (l2((center_and_normalize(scene_regions(s, A, B).numpy(), m) @ basis.numpy()) @ Wq.numpy()) @ pe.T).max(0)
                for s in test}


t0 = time.time(); r = cv(fit, score)
print(fmt(f"conv_head rank {R}, {STEPS} steps, labels + composites {N}", metrics(r)), f"{time.time() - t0:.0f}s", flush=True)
np.save(f"{PROBE_DIR}/e8_r{R}_s{STEPS}.npy", np.array([per_scene_ndcg(r)[s] for s in SIDS]))
