#!/usr/bin/env python3
"""Export a torchvision network, truncated at its usual feature layers, to ONNX.

Random weights (torch.manual_seed; no pretrained weights are fetched), with
the BatchNorm statistics and affine parameters randomised too so that folding
them into the convolutions is exercised. H and W are dynamic, so one file
serves every --input size.

  export_torchvision.py ARCH OUT.onnx [--opset 17] [--weights STATE_DICT.pth]

--weights loads your own weights (a state_dict saved with torch.save, e.g. a
torchvision checkpoint you hold under its licence) instead of random ones.

prints the ONNX output names (the --outputs of flawlens import-onnx), one per
line. ARCH: resnet18 resnet50 wide_resnet50_2 mobilenet_v3_large efficientnet_b0.
"""
import argparse

import torch
import torchvision

# Feature layers as PatchCore / PaDiM use them: ResNets' layer2 + layer3
# (stride 8 and 16); for the mobile networks the last block at stride 8 and 16.
LAYERS = {
    "resnet18": ["layer2", "layer3"],
    "resnet50": ["layer2", "layer3"],
    "wide_resnet50_2": ["layer2", "layer3"],
    "mobilenet_v3_large": ["features.6", "features.12"],
    "efficientnet_b0": ["features.3", "features.5"],
}


class Features(torch.nn.Module):
    def __init__(self, arch, net):
        super().__init__()
        self.arch = arch
        self.net = net
        self.names = LAYERS[arch]

    def forward(self, x):
        n = self.net
        if self.arch.startswith(("resnet", "wide_resnet")):
            x = n.maxpool(n.relu(n.bn1(n.conv1(x))))
            x = n.layer1(x)
            f2 = n.layer2(x)
            return f2, n.layer3(f2)
        want = [int(name.split(".")[1]) for name in self.names]
        out = []
        for i, block in enumerate(n.features[: max(want) + 1]):
            x = block(x)
            if i in want:
                out.append(x)
        return tuple(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("arch", choices=sorted(LAYERS))
    ap.add_argument("out")
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--weights", help="state_dict (.pth) to load instead of random weights")
    ap.add_argument("--keep-batchnorm", action="store_true",
                    help="keep BatchNormalization nodes (torch folds them into the convolutions "
                         "by default; this exercises flawlens' own folding)")
    args = ap.parse_args()
    torch.manual_seed(0)
    net = getattr(torchvision.models, args.arch)(weights=None)
    if args.weights:
        state = torch.load(args.weights, map_location="cpu")
        net.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state)
    gen = torch.Generator().manual_seed(1)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d) and not args.weights:
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(c, generator=gen) * 0.1)
    model = Features(args.arch, net).eval()
    names = LAYERS[args.arch]
    x = torch.randn(1, 3, 224, 224)
    dyn = {"image": {2: "height", 3: "width"}}
    for name in names:
        dyn[name] = {2: "h_" + name, 3: "w_" + name}
    with torch.no_grad():
        mode = torch.onnx.TrainingMode.PRESERVE if args.keep_batchnorm else torch.onnx.TrainingMode.EVAL
        torch.onnx.export(model, x, args.out, opset_version=args.opset, input_names=["image"],
                          output_names=names, dynamic_axes=dyn, training=mode,
                          do_constant_folding=not args.keep_batchnorm)
    for name in names:
        print(name)


if __name__ == "__main__":
    main()
