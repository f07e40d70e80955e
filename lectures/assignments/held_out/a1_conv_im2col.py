"""Held-out checks of assignment 1: an example of a teacher's folder of checks the students never see.

A teacher keeps a folder like this one out of the students' reach (this one
is public: it shows the form). It holds ``<assignment file name>.py`` files,
each with a ``CHECKS = Checklist()`` written like the public checks in
``minimal_seg/assignments/checks/``, on inputs of the teacher's own: new
shapes, new seeds. They run after the public checks::

    python -m minimal_seg check a1 --impl STUDENT_FILE --held-out lectures/assignments/held_out
    python -m minimal_seg check all --submissions SUBMISSIONS --gradebook grades.csv --held-out MY_FOLDER
"""
import numpy

from minimal_seg import functional as F
from minimal_seg.assignments.grader import Checklist

CHECKS = Checklist()
SEED = 20261204  # the teacher's own: the public checks never use it

# (x shape, w shape, stride, padding): odd sizes and a padding larger than the kernel's half
CASES = [((1, 2, 9, 7), (3, 2, 3, 2), 3, 2), ((3, 1, 4, 11), (2, 1, 1, 3), 1, 1)]


@CHECKS.add("conv2d forward and backward on shapes and seeds the public checks never use", expect="< 1e-10")
def unseen_shapes(s, ctx):
    rng = numpy.random.default_rng(SEED)
    for x_shape, w_shape, stride, padding in CASES:
        x, w, b = rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])
        ctx.expect_same_pair((s.conv2d_forward, s.conv2d_backward), (F.conv2d_forward, F.conv2d_backward),
                             (x, w, b, stride, padding), names=("out", "dx", "dw", "db"),
                             case=f"x {x_shape}, w {w_shape}, stride {stride}, padding {padding}", seed=SEED + 1)
