"""Choosing the one face a sample is about: the largest, or the one inside a given person box."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from emovlm.faces.base import Face
from emovlm.faces.boxes import intersection_area
from emovlm.types import Box


def inside_fraction(face: Face, box: Box) -> float:
    """Share of the face box's area that lies inside `box` (0 to 1)."""
    if face.area <= 0:
        return 0.0
    return float(intersection_area(box, np.array([face.box]))[0]) / face.area


def main_face(faces: Sequence[Face], person_box: Box | None = None) -> Face | None:
    """The face a sample is about, or None when there is no candidate.

    Without `person_box`: the largest face (ties go to the higher score). With a person box
    (e.g. EMOTIC's): among faces that overlap the box, the one with the largest share of its
    own area inside the box, then the largest; None when no face touches the box. Measuring
    the face's own share keeps a large neighbour's face that merely grazes the box from winning
    over the person's smaller face lying wholly inside it.
    """
    if person_box is None:
        return max(faces, key=lambda face: (face.area, face.score), default=None)
    scored = [(inside_fraction(face, person_box), face.area, face.score, face) for face in faces]
    touching = [entry for entry in scored if entry[0] > 0]
    best = max(touching, key=lambda entry: entry[:3], default=None)
    return best[-1] if best else None
