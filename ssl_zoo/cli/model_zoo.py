"""``ssl-zoo-model-zoo`` (= ``tools/model_zoo.py``): list the catalog, download, convert and export checkpoints.

Examples:
    ssl-zoo-model-zoo list                                  # the catalog as a table
    ssl-zoo-model-zoo list --markdown > model_zoo/MODEL_ZOO.md
    ssl-zoo-model-zoo download byol_r50_1x_1000ep          # into $SSL_ZOO_CACHE, verified
    ssl-zoo-model-zoo convert byol_r50_1x_1000ep out/byol_r50.safetensors
    ssl-zoo-model-zoo convert --format moco moco_v2_800ep_pretrain.pth.tar out/moco.pth
    ssl-zoo-model-zoo convert --format haiku_byol --option params=target pretrain_res50x1.pkl out/t.pth
    ssl-zoo-model-zoo export out/byol_r50.safetensors out/r50_tv.pth --to torchvision --arch resnet50
    ssl-zoo-model-zoo export byol_r50_1x_1000ep out/r50.ts --to torchscript     # a file torch.jit.load reads
    ssl-zoo-model-zoo export byol_r50_1x_1000ep out/r50.onnx --to onnx          # needs the onnx package
    ssl-zoo-model-zoo export output/byol/model_final.pth out/byol_r50_d2.pkl --to detectron2  # MoCo's d2 layout

``convert`` takes a catalog name or a local file (``--format``, default auto) and writes
torchvision-named backbone weights: ``.safetensors`` or a ``torch.save`` state dict.
"""
from __future__ import annotations

import argparse
import logging
import os
import pickle
import sys
import traceback

from tabulate import tabulate

from ssl_zoo import model_zoo
from ssl_zoo.engine.defaults import USER_ERRORS, error_line
from ssl_zoo.model_zoo import catalog, export
from ssl_zoo.model_zoo.export_graph import export_onnx, export_torchscript
from ssl_zoo.modeling.backbones import build_backbone
from ssl_zoo.modeling.backbones.tf_same_padding import convert_to_tf_same_padding_

__all__ = ["main"]


def _parse_options(pairs):
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--option expects KEY=VALUE, got '{pair}'")
        out[key] = {"true": True, "false": False}.get(value.lower(), value)
    return out


def cmd_list(args) -> None:
    entries = catalog.load_catalog()
    if args.markdown:
        sys.stdout.write(catalog.render_markdown(entries))
        return
    rows = [(e.name, e.method, f"{e.arch} {e.width}x", e.epochs or "-", e.headline_metric, e.format,
             e.padding, e.size or "-", e.verification) for e in entries.values()]
    print(tabulate(rows, headers=["name", "method", "arch", "epochs", "metric", "format", "padding", "size",
                                  "checksum"]))
    print(f"\n{len(rows)} entries from {catalog.catalog_path()}; cache: {model_zoo.cache_dir()}")


def cmd_download(args) -> None:
    for name in args.names:
        print(catalog.download_entry(name, progress=not args.quiet))


def cmd_convert(args) -> None:
    options = _parse_options(args.option)
    if os.path.isfile(args.source):
        sd = model_zoo.convert_file(args.source, args.format, **options)
        meta = {"source": os.path.basename(args.source), "format": args.format, "padding": args.padding}
    else:
        entry = catalog.get_entry(args.source)
        sd = model_zoo.get_state_dict(args.source, progress=not args.quiet)
        meta = {"entry": entry.name, "arch": entry.arch, "width": entry.width, "padding": entry.padding}
    _write(sd, args.output, meta)
    print(f"wrote {len(sd)} tensors to {args.output}")


def _write(sd, path, meta) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if path.endswith(".safetensors"):
        export.export_safetensors(sd, path, metadata=meta)
    else:
        export.export_torchvision(sd, path, padding=str(meta.get("padding", "torch")))


def _whole_model(args):
    """(backbone with weights, input size) for the graph exports: a catalog name or a weights file + --arch."""
    if not os.path.isfile(args.input):
        entry = catalog.get_entry(args.input)
        return model_zoo.get(args.input), args.input_size or entry.input_size
    if not args.arch:
        raise ValueError(f"--to {args.to} of a weights file needs --arch (e.g. resnet50) to build the network")
    model = build_backbone(args.arch)
    if args.padding == "tf_same":
        model = convert_to_tf_same_padding_(model)
    model_zoo.load_backbone_state(model, model_zoo.convert_file(args.input, "ssl_zoo"), source=args.input)
    return model, args.input_size or 224


def cmd_export(args) -> None:
    if args.to in ("torchscript", "onnx"):
        model, size = _whole_model(args)
        (export_torchscript if args.to == "torchscript" else export_onnx)(model, args.output, input_size=size)
        print(f"wrote {args.output}")
        return
    sd = model_zoo.convert_file(args.input, "ssl_zoo") if os.path.isfile(args.input) else model_zoo.get_state_dict(args.input)
    padding = args.padding
    if args.input.endswith(".safetensors"):
        padding = export.read_safetensors_metadata(args.input).get("padding", padding)
    elif not os.path.isfile(args.input):
        padding = catalog.get_entry(args.input).padding
    if args.to == "torchvision":
        export.export_torchvision(sd, args.output, arch=args.arch, padding=padding)
    elif args.to == "timm":
        if not args.arch:
            raise SystemExit("--to timm needs --arch (a timm model name, e.g. resnet50)")
        export.export_timm(sd, args.output, arch=args.arch, padding=padding)
    elif args.to == "detectron2":
        export.export_detectron2(sd, args.output, padding=padding)
    else:
        export.export_safetensors(sd, args.output, metadata={"arch": args.arch or "", "padding": padding})
    print(f"wrote {args.output}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("list", help="print the catalog")
    p.add_argument("--markdown", action="store_true", help="print MODEL_ZOO.md instead of a text table")
    p.set_defaults(fn=cmd_list)
    p = sub.add_parser("download", help="download catalog entries into the cache (verified)")
    p.add_argument("names", nargs="+")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(fn=cmd_download)
    p = sub.add_parser("convert", help="convert a catalog entry or a local checkpoint to backbone weights")
    p.add_argument("source", help="catalog name or checkpoint file")
    p.add_argument("output", help=".safetensors or .pth")
    p.add_argument("--format", default="auto", choices=["auto"] + model_zoo.CONVERTER_REGISTRY.names())
    p.add_argument("--option", action="append", metavar="KEY=VALUE", help="converter option, e.g. params=target")
    p.add_argument("--padding", default="torch", choices=["torch", "tf_same"], help="recorded in the output metadata")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(fn=cmd_convert)
    p = sub.add_parser("export", help="export a backbone to torchvision / timm / safetensors weights, or to a "
                                      "TorchScript / ONNX graph")
    p.add_argument("input", help="catalog name or converted weights (.safetensors / .pth)")
    p.add_argument("output")
    p.add_argument("--to", "--format", dest="to", default="torchvision",
                   choices=["torchvision", "timm", "safetensors", "detectron2", "torchscript", "onnx"],
                   help="detectron2: MoCo's convert-pretrain-to-detectron2.py key layout (a .pkl)")
    p.add_argument("--arch", default=None, help="check against this torchvision / timm model (e.g. resnet50); "
                   "for torchscript / onnx of a weights file: the ResNet to build")
    p.add_argument("--input-size", type=int, default=0, help="torchscript / onnx: side of the example input "
                   "(default: the catalog entry's input_size, else 224)")
    p.add_argument("--padding", default="torch", choices=["torch", "tf_same"])
    p.set_defaults(fn=cmd_export)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        args.fn(args)
    except USER_ERRORS + (pickle.UnpicklingError, RuntimeError, ModuleNotFoundError) as e:  # bad file, name, download: one line
        if args.debug:
            traceback.print_exc()
        sys.exit(error_line(e))


if __name__ == "__main__":
    main()
