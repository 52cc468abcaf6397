"""Default values of every framework-level config key, each with a comment.

Method-specific keys (projector sizes, loss temperature, momentum base, ...) are NOT
here: each method declares its own node in ``add_config`` (see ``methods/byol.py``),
so adding a method never edits this file.

Values here are framework defaults, not any paper's recipe: the paper recipes live in
``configs/`` with a citation on every value.
"""
from fvcore.common.config import CfgNode as _FvCfgNode

_C = _FvCfgNode()
_C.VERSION = 1
# Seed of every random stream (model init, data order, augmentation); <0 = from time.
_C.SEED = 1337
# Where checkpoints, metrics.jsonl, TensorBoard events and summaries are written.
_C.OUTPUT_DIR = "./output"
# "auto" = cuda if available else cpu.
_C.DEVICE = "auto"
# Make cuDNN / CPU kernels deterministic (slower); CPU runs are deterministic anyway.
_C.CUDNN_BENCHMARK = True

# ---------------------------------------------------------------------------- MODEL
_C.MODEL = _FvCfgNode()
# Name of the SSL method in METHOD_REGISTRY (e.g. "BYOL"); its keys live in cfg.<METHOD>.
_C.MODEL.METHOD = "BYOL"
# Path / URL of weights to initialise the online backbone from ("" = random init).
_C.MODEL.WEIGHTS = ""
# Convert every BatchNorm to a cross-process synchronised one (torch's on CUDA,
# ssl_zoo's all-reduce implementation on CPU/gloo).
_C.MODEL.SYNC_BN = False
# Use torch.channels_last memory format (faster convolutions on GPU tensor cores).
_C.MODEL.CHANNELS_LAST = False
# Device types on which CHANNELS_LAST applies (elsewhere the model stays contiguous): the
# ImageNet configs use ("cuda",), a device-conditional default (issue #18).
_C.MODEL.CHANNELS_LAST_DEVICES = ("cpu", "cuda")
# torch.compile the method's forward/backward (ssl_zoo.engine.compile; eager fallback + a log
# line when it cannot compile). Same result as eager up to float rounding (tests/engine).
_C.MODEL.COMPILE = False
# torch.compile backend: "inductor" (fast), "aot_eager" / "eager" (debugging).
_C.MODEL.COMPILE_BACKEND = "inductor"

_C.MODEL.BACKBONE = _FvCfgNode()
# BACKBONE_REGISTRY name ("resnet50", "resnet18_cifar", ...) or "timm:<model name>".
_C.MODEL.BACKBONE.NAME = "resnet50"
# Width multiplier for ResNets (1, 2, 3, 4: BYOL Table 1 wider networks).
_C.MODEL.BACKBONE.WIDTH = 1
# Channels of the first stage before the width multiplier (64 in torchvision ResNets).
_C.MODEL.BACKBONE.BASE_WIDTH = 64
# Replace the 7x7/2 stem + max-pool by a 3x3/1 stem (for 32 px CIFAR images).
_C.MODEL.BACKBONE.CIFAR_STEM = False
# Zero-init the last BN gamma of each residual block. BYOL: [P] off (gamma = 1, byol/README.md
# "Note on batch normalization"); [C] on (Haiku BlockV1 bn_2 scale_init=zeros). SimCLR (tf2 resnet
# init_zero), SimSiam and Barlow Twins (zero_init_residual=True): on in their code and configs.
_C.MODEL.BACKBONE.ZERO_INIT_RESIDUAL = False

_C.MODEL.BN = _FvCfgNode()
# PyTorch momentum = 1 - decay. BYOL App. J: decay 0.9 -> momentum 0.1.
_C.MODEL.BN.MOMENTUM = 0.1
_C.MODEL.BN.EPS = 1e-5

# ---------------------------------------------------------------------------- INPUT
_C.INPUT = _FvCfgNode()
# Name in AUGMENTATION_REGISTRY of the multi-view training preset ("byol", "simclr", ...).
_C.INPUT.AUG_PRESET = "byol"
# "pil": per-image torchvision/PIL ops in DataLoader workers (reference);
# "batched": workers decode + crop to uint8, colour/blur/solarize/flip run batched
# on the training device with per-sample random parameters (fast).
# "gpu": workers only read the file bytes; JPEG decode (torchvision.io.decode_jpeg, batched),
# random resized crop and every op run on the training device (CUDA; the CPU otherwise).
_C.INPUT.BACKEND = "batched"
# Side of the square training crops.
_C.INPUT.IMAGE_SIZE = 224
# Per-op overrides of the preset; None = keep the preset's value. Pairs are (view 1, view 2).
_C.INPUT.AUG = _FvCfgNode()
_C.INPUT.AUG.CROP_SCALE = None  # (min, max) area fraction of the random resized crop
_C.INPUT.AUG.CROP_RATIO = None  # (min, max) aspect ratio, sampled log-uniformly
_C.INPUT.AUG.FLIP_PROB = None  # (p1, p2)
_C.INPUT.AUG.JITTER_PROB = None  # (p1, p2)
_C.INPUT.AUG.JITTER_STRENGTH = None  # (brightness, contrast, saturation, hue)
_C.INPUT.AUG.GRAYSCALE_PROB = None  # (p1, p2)
_C.INPUT.AUG.BLUR_PROB = None  # (p1, p2)
_C.INPUT.AUG.BLUR_SIGMA = None  # (min, max)
_C.INPUT.AUG.SOLARIZE_PROB = None  # (p1, p2)
# Colour-jitter semantics: "tf" (official BYOL / SimCLR v1 code: additive brightness, per-channel
# contrast, HSV saturation; the byol* and simclr presets) or "torchvision" (ColorJitter; MoCo,
# SimSiam, Barlow Twins). None keeps the preset's (PROTOCOLS.md s.1, s.8).
_C.INPUT.AUG.JITTER_IMPL = None
# Normalisation after augmentation (ImageNet statistics, BYOL App. B).
_C.INPUT.MEAN = (0.485, 0.456, 0.406)
_C.INPUT.STD = (0.229, 0.224, 0.225)
# Evaluation transform of the kNN monitor and of tools/benchmark.py (one geometry): resize the
# shorter side to EVAL_RESIZE, centre-crop IMAGE_SIZE (PROTOCOLS.md s.1 / s.3). 0 (default) =
# IMAGE_SIZE / BENCHMARK.CROP_FRACTION: 256 -> 224 at ImageNet scale, 37 -> 32 for CIFAR.
_C.INPUT.EVAL_RESIZE = 0

# ---------------------------------------------------------------------------- DATASETS
_C.DATASETS = _FvCfgNode()
# Root under which named datasets are looked up ("" = $SSL_ZOO_DATASETS, else ./datasets).
_C.DATASETS.ROOT = ""
# DATASET_REGISTRY name, a folder of images (an ImageFolder of class folders, or any folder:
# flat or nested, read without labels) or a file list of '<path> [<label>]' lines, for pretraining.
_C.DATASETS.TRAIN = "imagenet_train"
# How a folder in DATASETS.* is read: "auto" = class folders when every image sits exactly one level
# down (root/<class>/<image>), else every image without labels (ssl_zoo/data/datasets/unlabeled_folder.py);
# "class_folders" = always ImageFolder; "none" = always unlabeled.
_C.DATASETS.FOLDER_LABELS = "auto"
# Labeled splits for the kNN monitor: memory bank and queries ("" disables the monitor).
_C.DATASETS.KNN_TRAIN = ""
_C.DATASETS.KNN_TEST = ""
# What to do with an unreadable image: "fail" (raise, naming the file) or "skip" (count, report).
_C.DATASETS.CORRUPT_POLICY = "fail"
# Train on a class-balanced subset of DATASETS.TRAIN (semi-supervised splits, quick runs):
# a fraction of each class (0 = all images) OR a number of images per class (0 = all);
# at most one of the two may be set.
_C.DATASETS.TRAIN_SUBSET_FRACTION = 0.0
_C.DATASETS.TRAIN_SUBSET_PER_CLASS = 0
# Seed of the subset draw: fixed, independent of SEED, so every run sees the same images.
_C.DATASETS.TRAIN_SUBSET_SEED = 0

_C.DATALOADER = _FvCfgNode()
# Worker processes per training process.
_C.DATALOADER.NUM_WORKERS = 8
_C.DATALOADER.PIN_MEMORY = True
# Drop the last incomplete batch of an epoch (keeps per-step batch statistics equal).
_C.DATALOADER.DROP_LAST = True

# ---------------------------------------------------------------------------- SOLVER
_C.SOLVER = _FvCfgNode()
# OPTIMIZER_REGISTRY name: "LARS", "SGD", "AdamW".
_C.SOLVER.OPTIMIZER = "LARS"
# Global batch size over all processes (per-process = IMS_PER_BATCH / world size).
_C.SOLVER.IMS_PER_BATCH = 4096
# Gradient accumulation: micro-batches per optimizer step; one "iteration" = one step.
_C.SOLVER.ACCUM_STEPS = 1
# Learning rate = BASE_LR * scale(IMS_PER_BATCH * ACCUM_STEPS / REFERENCE_BATCH_SIZE).
_C.SOLVER.BASE_LR = 0.2
_C.SOLVER.REFERENCE_BATCH_SIZE = 256
# "linear" (Goyal et al.), "sqrt", or "none".
_C.SOLVER.LR_SCALING = "linear"
_C.SOLVER.WEIGHT_DECAY = 1.5e-6
# Momentum of SGD/LARS (heavy ball).
_C.SOLVER.MOMENTUM = 0.9
_C.SOLVER.NESTEROV = False
# LARS trust coefficient (eta).
_C.SOLVER.LARS_ETA = 1e-3
# LARS: False = lr outside the momentum trace (BYOL's code, PROTOCOLS.md s.2); True = lr inside it
# (SimCLR's LARSOptimizer(classic_momentum=True), optax.lars). They differ only while the lr changes.
_C.SOLVER.LARS_LR_IN_MOMENTUM = False
# Exclude biases and normalisation parameters from weight decay (and LARS adaptation).
_C.SOLVER.EXCLUDE_BIAS_AND_NORM = True
# AdamW betas.
_C.SOLVER.BETAS = (0.9, 0.999)
# Training length in epochs of DATASETS.TRAIN; MAX_ITER > 0 overrides it.
_C.SOLVER.EPOCHS = 1000
_C.SOLVER.MAX_ITER = 0
# LR_SCHEDULER_REGISTRY name: "warmup_cosine" or "warmup_step".
_C.SOLVER.LR_SCHEDULER = "warmup_cosine"
# Linear warm-up from 0 (in epochs; WARMUP_ITERS > 0 overrides).
_C.SOLVER.WARMUP_EPOCHS = 10.0
_C.SOLVER.WARMUP_ITERS = 0
# Final lr of the cosine, as a fraction of the peak lr.
_C.SOLVER.FINAL_LR_FRACTION = 0.0
# warmup_step: epochs at which the lr is multiplied by GAMMA.
_C.SOLVER.STEPS = (120, 160)
_C.SOLVER.GAMMA = 0.1
# Gradient clipping by global norm (0 = off).
_C.SOLVER.CLIP_GRAD_NORM = 0.0
# Save a checkpoint every N iterations (and always at the end).
_C.SOLVER.CHECKPOINT_PERIOD = 5000
# Periodic checkpoints kept on disk, newest first (0 = all). model_final.pth and the one
# last_checkpoint names are never deleted. 3 = the newest plus two fallbacks should it be damaged
# (the paper schedule would otherwise keep 62 full checkpoints).
_C.SOLVER.CHECKPOINT_MAX_TO_KEEP = 3
# A state with a floating value above this (or non-finite) is not checkpointed, so a diverging run
# never "poisons" its last checkpoint (ssl_zoo.checkpoint.sanity; <= 0 checks finiteness only).
_C.SOLVER.CHECKPOINT_MAX_ABS = 1e6
# Mixed precision.
_C.SOLVER.AMP = _FvCfgNode()
_C.SOLVER.AMP.ENABLED = False
_C.SOLVER.AMP.DTYPE = "bfloat16"  # or "float16" (uses a GradScaler)
# Device types on which ENABLED applies (elsewhere fp32): the ImageNet configs use ("cuda",),
# bf16 autocast on GPUs by default and fp32 on CPUs (issue #18).
_C.SOLVER.AMP.DEVICES = ("cpu", "cuda")

# ---------------------------------------------------------------------------- TEST / monitoring
_C.TEST = _FvCfgNode()
# Run the kNN monitor every N iterations (0 = only before and after training).
_C.TEST.KNN_PERIOD = 0
# Weighted cosine kNN (Wu et al. 2018): neighbours and temperature.
_C.TEST.KNN_K = (200, 20)
_C.TEST.KNN_TEMPERATURE = 0.1
# Batch size of feature extraction for monitors.
_C.TEST.IMS_PER_BATCH = 256

_C.LOG = _FvCfgNode()
# Write metrics.jsonl / TensorBoard every N iterations.
_C.LOG.PERIOD = 20
_C.LOG.TENSORBOARD = True
# Progress bar on stdout (tqdm).
_C.LOG.PROGRESS_BAR = True
# Log the collapse signal (std of L2-normalised outputs) every N iterations.
_C.LOG.COLLAPSE_PERIOD = 20
# Warn of dimensional collapse when the effective rank of a batch of embeddings falls below this
# (only for batches that could span >= 4x as many directions; 0 disables). Healthy quickstart runs
# sit at 6-60, complete collapses at 1.3-2, BYOL's tau = 0 under LARS at 2.2-3.8 (README, "Methods at
# the same budget").
_C.LOG.COLLAPSE_MIN_RANK = 3.0
# Write summary.json and a PNG plot of loss / kNN accuracy at the end of training.
_C.LOG.SUMMARY = True

# ---------------------------------------------------------------------------- BENCHMARK
# tools/benchmark.py: evaluation of a frozen / fine-tuned backbone (PROTOCOLS.md s.3-4).
_C.BENCHMARK = _FvCfgNode()
# Labelled splits ("" = DATASETS.KNN_TRAIN / KNN_TEST; --dataset NAME sets NAME_train / NAME_test).
_C.BENCHMARK.TRAIN = ""
_C.BENCHMARK.TEST = ""
# Validation split held out from BENCHMARK.TRAIN for choosing hyper-parameters (never the test
# set): VAL_SIZE images drawn with VAL_SEED if > 0, else a class-balanced VAL_FRACTION of every
# class. VAL_SIZE -1 (default) = 10,009 for ImageNet (imagenet_* train sets, [P] PROTOCOLS.md s.3;
# [C] uses the first 10,000 of TFDS train, an order an ImageFolder copy does not have), else 0.
_C.BENCHMARK.VAL_FRACTION = 0.1
_C.BENCHMARK.VAL_SIZE = -1
_C.BENCHMARK.VAL_SEED = 0
# Evaluation images: resize the shorter side to IMAGE_SIZE / CROP_FRACTION, centre-crop
# IMAGE_SIZE (256 -> 224 at ImageNet scale, 37 -> 32 for CIFAR).
_C.BENCHMARK.CROP_FRACTION = 0.875
# Seed of epoch orders, augmentations and head initialisation.
_C.BENCHMARK.SEED = 0
# Where fast-mode feature caches are written ("" = $SSL_ZOO_CACHE/features).
_C.BENCHMARK.CACHE_DIR = ""
# Every run appends one row per result to this CSV (runs can be compared across weights).
_C.BENCHMARK.RESULTS_CSV = "./output/benchmark_results.csv"

_C.BENCHMARK.LINEAR = _FvCfgNode()
# "faithful" (the paper: frozen encoder on freshly augmented images every epoch), "fast"
# (features cached once, heads trained on the cache) or "both" (and report the speedup).
_C.BENCHMARK.LINEAR.MODE = "faithful"
# PROTOCOLS.md s.3 (BYOL App. C.1): SGD + Nesterov 0.9, batch 1024, 80 epochs, no weight decay,
# lr grid chosen on the validation split; cosine lr decay as in the official code.
_C.BENCHMARK.LINEAR.EPOCHS = 80
_C.BENCHMARK.LINEAR.BATCH_SIZE = 1024
_C.BENCHMARK.LINEAR.LRS = (0.4, 0.3, 0.2, 0.1, 0.05)
_C.BENCHMARK.LINEAR.MOMENTUM = 0.9
_C.BENCHMARK.LINEAR.NESTEROV = True
_C.BENCHMARK.LINEAR.WEIGHT_DECAY = 0.0
# Fast mode: augmented (random resized crop + flip) copies of every training image whose
# features are cached; each epoch draws one copy per image. 0 = centre crops only.
_C.BENCHMARK.LINEAR.FAST_AUG_COPIES = 4

_C.BENCHMARK.SEMI = _FvCfgNode()
# PROTOCOLS.md s.4 (BYOL App. C.1): fine-tune the whole network on 1% / 10% of the labels,
# SGD + Nesterov 0.9, batch 1024, no weight decay; lr and epochs chosen on the validation split.
_C.BENCHMARK.SEMI.LRS = (0.01, 0.02, 0.05, 0.1, 0.005)
_C.BENCHMARK.SEMI.EPOCHS = (30, 50)
_C.BENCHMARK.SEMI.BATCH_SIZE = 1024
_C.BENCHMARK.SEMI.MOMENTUM = 0.9
_C.BENCHMARK.SEMI.NESTEROV = True
_C.BENCHMARK.SEMI.WEIGHT_DECAY = 0.0
# Labelled subset: a file of image names, one per line (SimCLR's lists), or "" = for ImageNet
# SimCLR's public 1% / 10% lists (downloaded into the cache), elsewhere a class-balanced
# fraction of every class drawn with SUBSET_SEED from the images outside the validation split.
_C.BENCHMARK.SEMI.SUBSET_LIST = ""
_C.BENCHMARK.SEMI.SUBSET_SEED = 0

_C.BENCHMARK.SEGMENTATION = _FvCfgNode()
# PROTOCOLS.md s.6 (BYOL App. D.4): FCN (conv5 stride 1 / dilation 2; 2 x [3x3 256 d6 + BN + ReLU];
# 1x1) fine-tuned on VOC2012 train_aug (10,582), tested on val (1,449). Classes incl. background;
# 0 = from the dataset (21 for VOC, classes.txt + 1 for a set that declares its classes).
_C.BENCHMARK.SEGMENTATION.NUM_CLASSES = 0
_C.BENCHMARK.SEGMENTATION.IGNORE_LABEL = 255  # VOC's "void" (object boundaries), never trained or scored
_C.BENCHMARK.SEGMENTATION.ITERS = 30000
_C.BENCHMARK.SEGMENTATION.BATCH_SIZE = 16
_C.BENCHMARK.SEGMENTATION.WEIGHT_DECAY = 1e-4
_C.BENCHMARK.SEGMENTATION.MOMENTUM = 0.9  # not stated in the paper (SGD with momentum 0.9 as MoCo's FCN)
_C.BENCHMARK.SEGMENTATION.LR_STEPS = (0.7, 0.9)  # lr x0.1 at 70% and 90% of training
# The paper selects the base lr among 5 log-spaced values in [1e-3, 1e-1] on 2,119 images held out
# from train_aug (= 20%), then trains on all of train_aug. BASE_LR > 0 skips the sweep.
_C.BENCHMARK.SEGMENTATION.BASE_LR = 0.0
_C.BENCHMARK.SEGMENTATION.LRS = (0.001, 0.00316, 0.01, 0.0316, 0.1)
_C.BENCHMARK.SEGMENTATION.SWEEP_ITERS = 0  # iterations of each sweep run (0 = ITERS, the paper)
_C.BENCHMARK.SEGMENTATION.VAL_SIZE = 2119  # held-out images (20% of the set when it has fewer than 2 x VAL_SIZE)
_C.BENCHMARK.SEGMENTATION.CROP_SIZE = 513  # training crop and evaluation window
_C.BENCHMARK.SEGMENTATION.SCALE_RANGE = (0.5, 2.0)
_C.BENCHMARK.SEGMENTATION.HEAD_CHANNELS = 256
_C.BENCHMARK.SEGMENTATION.HEAD_DILATION = 6
# Resize every image / label map by this factor before the pipeline (1 = the paper; < 1 for CPU
# budget runs on small sets, named in the results' "protocol").
_C.BENCHMARK.SEGMENTATION.IMAGE_SCALE = 1.0

_C.BENCHMARK.DEPTH = _FvCfgNode()
# PROTOCOLS.md s.6 (BYOL App. D.6, Laina et al. 2016): conv5 -> 4 fast up-projections (512..64)
# -> 3x3 conv -> depth at 1/2 the input resolution; reverse Huber loss; NYU v2 (654 test frames).
_C.BENCHMARK.DEPTH.ITERS = 7500
_C.BENCHMARK.DEPTH.BATCH_SIZE = 256
_C.BENCHMARK.DEPTH.BASE_LR = 0.16  # 0.01 x 256/16, scaled linearly from Laina et al.
_C.BENCHMARK.DEPTH.WEIGHT_DECAY = 5e-4
_C.BENCHMARK.DEPTH.MOMENTUM = 0.9  # not stated in the paper (Laina et al.: SGD momentum 0.9)
_C.BENCHMARK.DEPTH.LR_STEPS = (0.7, 0.9)  # not stated in the paper: the segmentation schedule's steps
_C.BENCHMARK.DEPTH.INPUT_SCALE = 0.5  # 640x480 frames downsampled by 0.5 ...
_C.BENCHMARK.DEPTH.CROP = (228, 304)  # ... and centre-cropped to 304x228 (height, width)
_C.BENCHMARK.DEPTH.BERHU_C = 0.2  # reverse Huber threshold c = 0.2 max|error| of the batch
_C.BENCHMARK.DEPTH.GRAYSCALE_PROB = 0.3
_C.BENCHMARK.DEPTH.BRIGHTNESS = 0.1255  # max additive brightness change (images in [0, 1])
_C.BENCHMARK.DEPTH.SATURATION = (0.5, 1.5)
_C.BENCHMARK.DEPTH.HUE = 0.2  # hue shift in [-0.2, 0.2] (fraction of the colour circle)
# Decoder channels of the up-projections; () = derived from the backbone: out_dim/4, halving,
# one block per factor 2 from the backbone's stride down to 2 (R50: 512, 256, 128, 64).
_C.BENCHMARK.DEPTH.DECODER_CHANNELS = ()

_C.BENCHMARK.DETECTION = _FvCfgNode()
# Faster R-CNN R50-C4 on VOC, MoCo's detectron2 protocol (PROTOCOLS.md s.6; moco@132aea9
# detection/configs/Base-RCNN-C4-BN.yaml + pascal_voc_R_50_C4_24k.yaml). Defaults = the protocol.
# VOC year directories ("" = <DATASETS.ROOT or $SSL_ZOO_DATASETS>/VOCdevkit/VOC2007 and .../VOC2012).
_C.BENCHMARK.DETECTION.VOC2007_ROOT = ""
_C.BENCHMARK.DETECTION.VOC2012_ROOT = ""
# s.6: batch 16 (summed over processes), lr 0.02, 24k iterations, lr x0.1 at 18k and 22k,
# linear warm-up of 100 iterations from 0.001 x lr (detectron2 WARMUP_FACTOR), SGD momentum 0.9,
# weight decay 1e-4 (0 on BN parameters: detectron2's WEIGHT_DECAY_NORM).
_C.BENCHMARK.DETECTION.IMS_PER_BATCH = 16
_C.BENCHMARK.DETECTION.BASE_LR = 0.02
_C.BENCHMARK.DETECTION.MAX_ITER = 24000
_C.BENCHMARK.DETECTION.STEPS = (18000, 22000)
_C.BENCHMARK.DETECTION.WARMUP_ITERS = 100
_C.BENCHMARK.DETECTION.WARMUP_FACTOR = 0.001
_C.BENCHMARK.DETECTION.MOMENTUM = 0.9
_C.BENCHMARK.DETECTION.WEIGHT_DECAY = 1.0e-4
_C.BENCHMARK.DETECTION.WEIGHT_DECAY_NORM = 0.0
# Budget for short runs (not the protocol; results are labelled "budget"): > 0 runs this many
# iterations with STEPS scaled by BUDGET_ITERS / MAX_ITER (warm-up kept, at most 10% of the budget).
_C.BENCHMARK.DETECTION.BUDGET_ITERS = 0
# s.6: shorter side 480-800 step 32 in training (one drawn per image), 800 at test, longer side
# <= 1333 (detectron2 MAX_SIZE_*); horizontal flip p 0.5 in training.
_C.BENCHMARK.DETECTION.MIN_SIZE_TRAIN = tuple(range(480, 801, 32))
_C.BENCHMARK.DETECTION.MIN_SIZE_TEST = 800
_C.BENCHMARK.DETECTION.MAX_SIZE = 1333
# detectron2 defaults for C4: anchors 32-512 x ratios 0.5/1/2 on res4, RoIAlignV2 14x14.
_C.BENCHMARK.DETECTION.ANCHOR_SIZES = (32, 64, 128, 256, 512)
_C.BENCHMARK.DETECTION.ASPECT_RATIOS = (0.5, 1.0, 2.0)
_C.BENCHMARK.DETECTION.POOLER_RESOLUTION = 14
# s.6: RPN pre/post-NMS top-k 12000/2000 in training, 6000/1000 at test.
_C.BENCHMARK.DETECTION.RPN_PRE_NMS_TOPK_TRAIN = 12000
_C.BENCHMARK.DETECTION.RPN_POST_NMS_TOPK_TRAIN = 2000
_C.BENCHMARK.DETECTION.RPN_PRE_NMS_TOPK_TEST = 6000
_C.BENCHMARK.DETECTION.RPN_POST_NMS_TOPK_TEST = 1000
# detectron2 defaults: 256 anchors and 512 RoIs sampled per image.
_C.BENCHMARK.DETECTION.RPN_BATCH_SIZE_PER_IMAGE = 256
_C.BENCHMARK.DETECTION.ROI_BATCH_SIZE_PER_IMAGE = 512
# s.6: precise BN (detectron2 TEST.PRECISE_BN, 200 iterations) before testing; 0 = off.
_C.BENCHMARK.DETECTION.PRECISE_BN_ITERS = 200
# Test images per process and batch; checkpoint period (for --resume); log period.
_C.BENCHMARK.DETECTION.TEST_IMS_PER_BATCH = 4
_C.BENCHMARK.DETECTION.CHECKPOINT_PERIOD = 2000
_C.BENCHMARK.DETECTION.LOG_PERIOD = 20

_C.BENCHMARK.TRANSFER = _FvCfgNode()
# PROTOCOLS.md s.5 (BYOL App. D): transfer to the 12 classification datasets (--task transfer).
# Seed of the per-class validation draws (Food101, CIFAR, Birdsnap, SUN397, Cars, Pets, Caltech-101).
_C.BENCHMARK.TRANSFER.SPLIT_SEED = 0
# Where split files are written / read ("" = $SSL_ZOO_CACHE/transfer_splits).
_C.BENCHMARK.TRANSFER.SPLIT_DIR = ""
# Linear: lambda of sum CE + lambda/2 ||W||^2, bias unpenalised (sklearn C = 1/lambda) from LAMBDA_NUM values
# log-spaced in [LAMBDA_MIN, LAMBDA_MAX] (s.5: 45 in [1e-6, 1e5]), chosen on validation.
_C.BENCHMARK.TRANSFER.LAMBDA_NUM = 45
_C.BENCHMARK.TRANSFER.LAMBDA_MIN = 1e-6
_C.BENCHMARK.TRANSFER.LAMBDA_MAX = 1e5
# L-BFGS stops at max |gradient| <= TOL (sklearn's tol, same scale) or MAX_ITER (Kornblith: 1000).
_C.BENCHMARK.TRANSFER.TOL = 1e-4
_C.BENCHMARK.TRANSFER.MAX_ITER = 1000
# Solve in the principal axes of the training features with a diagonal preconditioner (an exact change
# of variables: same minimiser, same stopping rule; benchmark/transfer/basis.py). False = plain L-BFGS.
_C.BENCHMARK.TRANSFER.PRECONDITION = True
# Fine-tune (s.5): SGD Nesterov 0.9, STEPS steps of BATCH_SIZE, lr in LRS x wd in WEIGHT_DECAYS
# (each wd divided by the lr), BN momentum min(10/s, 0.1) (torch convention), chosen on validation.
_C.BENCHMARK.TRANSFER.FINETUNE = _FvCfgNode()
_C.BENCHMARK.TRANSFER.FINETUNE.STEPS = 20000
_C.BENCHMARK.TRANSFER.FINETUNE.BATCH_SIZE = 256
_C.BENCHMARK.TRANSFER.FINETUNE.MOMENTUM = 0.9
_C.BENCHMARK.TRANSFER.FINETUNE.LRS = (1e-4, 3.1623e-4, 1e-3, 3.1623e-3, 1e-2, 3.1623e-2, 0.1)
_C.BENCHMARK.TRANSFER.FINETUNE.WEIGHT_DECAYS = (0.0, 1e-6, 3.1623e-6, 1e-5, 3.1623e-5, 1e-4, 3.1623e-4, 1e-3)
# --budget small (a quick look, NOT the protocol; the report says so): a reduced grid and step count.
_C.BENCHMARK.TRANSFER.FINETUNE.SMALL_STEPS = 100
_C.BENCHMARK.TRANSFER.FINETUNE.SMALL_LRS = (0.01, 0.1)
_C.BENCHMARK.TRANSFER.FINETUNE.SMALL_WEIGHT_DECAYS = (0.0,)
