"""Face detection, main-face choice, cropping and tracking.

Detectors are looked up by name (`get_face_detector("mtcnn" | "haar" | "none")`); each takes a
batch of RGB uint8 images and returns `Face`s (pixel box, score, 5 landmarks where the detector
has them). `main_face` picks the face a sample is about, `crop_face` cuts an aligned square
crop, and `track_faces` follows the main face through video frames.
"""

from emovlm.faces.base import LANDMARK_NAMES, Face, FaceDetector
from emovlm.faces.crop import crop_box, crop_face
from emovlm.faces.registry import FACE_DETECTORS, get_face_detector
from emovlm.faces.select import main_face
from emovlm.faces.track import track_faces

__all__ = [
    "FACE_DETECTORS",
    "LANDMARK_NAMES",
    "Face",
    "FaceDetector",
    "crop_box",
    "crop_face",
    "get_face_detector",
    "main_face",
    "track_faces",
]
