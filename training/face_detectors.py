"""Face detectors behind one small interface, for `dataset_tool.py from-videos --faces` (training/face_crops.py).

A detector has two methods, for uint8 H x W x 3 RGB frames:
  detect(frame) -> N x 4 array of face boxes (xmin, ymin, xmax, ymax) in pixels, most confident first;
  landmarks(frame, box) -> K x 2 landmarks (68 points in the iBUG 300-W layout, or 5) predicted from that box.
`load_detector(name, weights)` builds one: "dlib", "retinaface", or "package.module:factory" for any object with
these methods (factory(weights) -> detector).

"dlib": dlib's HOG frontal face detector (part of dlib) and its 68-point shape predictor
(`shape_predictor_68_face_landmarks.dat`, shipped by the PyPI package face_recognition_models, so it works offline
after `pip install -r requirements-faces.txt`). Licences: dlib and dlib-bin Boost Software License; the predictor
file is distributed as CC0 / public domain by face_recognition_models, but dlib's model notes say it was trained on
the iBUG 300-W data, whose licence excludes commercial use.

"retinaface": the paper's detector (RetinaFace, Deng et al. 2020), 5 landmarks, from a weights file of the public
Pytorch_Retinaface release (`mobilenet0.25_Final.pth` or `Resnet50_Final.pth`, given with --detector-weights;
nothing is downloaded), run by the PyPI package batch-face (MIT; `pip install batch-face==1.5.4`, which also pulls
OpenCV, matplotlib and pandas).
"""

import importlib
import importlib.util
from pathlib import Path

import numpy as np
import PIL.Image

FACES_EXTRA = "pip install -r requirements-faces.txt"
DLIB_PREDICTOR = "shape_predictor_68_face_landmarks.dat"
DETECT_SIZE = 640  # frames are shrunk so that their longer side is at most this for the (slow) box detector


# The 68-point predictor file shipped by face_recognition_models (located without importing the package, whose
# __init__ needs setuptools' pkg_resources).
def _packaged_dlib_predictor() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"--faces with the dlib detector needs the package face_recognition_models ({FACES_EXTRA}), "
                          f"or --detector-weights PATH/{DLIB_PREDICTOR}")
    return Path(list(spec.submodule_search_locations)[0]) / "models" / DLIB_PREDICTOR


# dlib's HOG face detector + 68-landmark shape predictor. `weights`: a shape predictor .dat file (default: the
# packaged one).
class DlibDetector:
    def __init__(self, weights: str | Path | None = None):
        try:
            import dlib
        except ImportError as e:
            raise ImportError(f"--faces with the dlib detector needs the package dlib-bin (or dlib): "
                              f"{FACES_EXTRA}") from e
        path = Path(weights) if weights is not None else _packaged_dlib_predictor()
        if not path.is_file():
            raise FileNotFoundError(f"{path}: dlib shape predictor file not found ({FACES_EXTRA} installs "
                                    f"{DLIB_PREDICTOR}, or pass --detector-weights)")
        try:
            self._predictor = dlib.shape_predictor(str(path))
        except RuntimeError as e:
            raise ValueError(f"{path}: not a dlib shape predictor file ({e})") from e
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()

    def detect(self, frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        scale = min(1.0, DETECT_SIZE / max(h, w))
        small = frame if scale == 1 else np.asarray(
            PIL.Image.fromarray(frame).resize((round(w * scale), round(h * scale)), PIL.Image.BILINEAR))
        for upsample in (0, 1):  # faces under ~80 px need the detector's 2x upsampling (4x slower)
            rects, scores, _ = self._detector.run(small, upsample, 0.0)
            if len(rects):
                break
        order = np.argsort(-np.asarray(scores))
        boxes = np.array([[r.left(), r.top(), r.right() + 1, r.bottom() + 1] for r in rects], np.float64)
        return boxes.reshape(-1, 4)[order] / scale

    def landmarks(self, frame: np.ndarray, box) -> np.ndarray:
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        shape = self._predictor(frame, self._dlib.rectangle(x0, y0, x1 - 1, y1 - 1))
        return np.array([[p.x + 0.5, p.y + 0.5] for p in shape.parts()], np.float64)  # pixel centres


# RetinaFace with batch-face's network, weights read by torch.load(weights_only=True) (never running code from the
# file). It does not take a box, so `landmarks` runs it on the frame region around the box (twice its size, so a
# shifted box shifts what the network sees) and returns the 5 points of the face there that overlaps the box most.
class RetinaFaceDetector:
    def __init__(self, weights: str | Path | None, threshold: float = 0.5):
        if weights is None:
            raise FileNotFoundError("--detector retinaface needs --detector-weights PATH: mobilenet0.25_Final.pth or "
                                    "Resnet50_Final.pth of the public Pytorch_Retinaface release")
        try:
            import torch
            from batch_face.face_detection.alignment import RetinaFace, batch_detect, cfg_mnet, cfg_re50
        except ImportError as e:
            raise ImportError("--detector retinaface needs the package batch-face: "
                              "pip install batch-face==1.5.4") from e
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            state = {k.removeprefix("module."): v for k, v in state.get("state_dict", state).items()}
            cfg = cfg_re50 if any(k.startswith("body.layer") for k in state) else cfg_mnet
            net = RetinaFace(cfg=cfg, phase="test")
            net.load_state_dict(state)
        except Exception as e:  # unpickling and state-dict mismatches raise many types
            raise ValueError(f"{weights}: not RetinaFace weights of the Pytorch_Retinaface layout "
                             f"({type(e).__name__}: {e})") from e
        self._net, self._batch_detect, self._torch, self.threshold = net.eval(), batch_detect, torch, threshold

    # Boxes (N x 4) and 5 landmarks (N x 5 x 2) in `image`, most confident first.
    def _run(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with self._torch.inference_mode():
            faces = self._batch_detect(self._net, [np.ascontiguousarray(image)], self._torch.device("cpu"),
                                       threshold=self.threshold)[0]
        faces = sorted(faces, key=lambda f: -float(f[2]))
        boxes = np.array([f[0] for f in faces], np.float64).reshape(-1, 4)
        return boxes, np.array([f[1] for f in faces], np.float64).reshape(-1, 5, 2)

    def detect(self, frame: np.ndarray) -> np.ndarray:
        return self._run(frame)[0]

    def landmarks(self, frame: np.ndarray, box) -> np.ndarray:
        from training.face_crops import pick_face
        x0, y0, x1, y1 = box
        w, h = x1 - x0, y1 - y0
        left, top = int(max(0, x0 - w / 2)), int(max(0, y0 - h / 2))
        boxes, points = self._run(frame[top:int(y1 + h / 2), left:int(x1 + w / 2)])
        i = pick_face(boxes + [left, top, left, top], box)
        if i is None:  # nothing in the region: the whole frame
            boxes, points = self._run(frame)
            i, left, top = pick_face(boxes, box), 0, 0
        return np.full((5, 2), np.nan) if i is None else points[i] + [left, top]


# A detector by name: "dlib", "retinaface" or "package.module:factory" (called with `weights`).
def load_detector(name: str, weights: str | Path | None = None):
    if name == "dlib":
        return DlibDetector(weights)
    if name == "retinaface":
        return RetinaFaceDetector(weights)
    module, sep, factory = name.partition(":")
    if not sep or not module or not factory:
        raise ValueError(f"--detector must be 'dlib', 'retinaface' or 'package.module:factory', got {name!r}")
    try:
        make = getattr(importlib.import_module(module), factory)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"--detector {name}: cannot load it ({type(e).__name__}: {e})") from e
    return make(weights)
