"""Adult-like tables of any size, written in chunks with bounded memory.

    python -m benchmarks.big --rows 100000000 --out /tmp/adult-100m            # a folder of Parquet parts
    python -m benchmarks.big --rows 1000000 --out /tmp/adult-1m.csv --format csv

Scale benchmarks need a table that looks like UCI Adult (its 15 columns, types and labels, `?` as null) at
sizes the real 32,561 rows cannot reach. Rows come from a small hand-written Bayesian network whose tables
were estimated once from adult.csv and are written below as counts and fitted numbers (nothing is read or
downloaded at run time):

    age -> sex -> relationship -> marital-status     (both also given the age band)
    native-country -> race -> fnlwgt                 (Adult's log-quantiles of fnlwgt, shifted per race)
    age -> education -> education-num (a function, as in Adult); sex, education -> occupation -> workclass
    sex, age, education -> hours-per-week            (Adult's pmf of 1..99 hours, tilted per group)
    age, education-num, hours, sex, relationship, occupation -> class    (a logistic regression on Adult)
    class -> capital-gain, capital-loss              (mostly 0; Adult's common amounts, which differ by class)

How a row is made. Row i is a point u_i of [0, 1) pushed through the network by inverse CDF, arithmetic-
decoding style: each column's value is the one whose slice of its CDF holds u, and u becomes its position
inside that slice for the next column (columns sharing parents are drawn as one joint value, the same thing
done faster); fnlwgt, last, is an integer quantile. The points are independent uniforms: u_i is the top 53
bits of splitmix64's i-th output for the seed (a counter-based generator), so any chunk is made alone, with
no global state. Rows are therefore independent draws from the network, as a real table's rows are taken to
be, and repeat at the rate the network gives them (a few per million rows; the real Adult has 24 repeats in
32,561 rows). They are deliberately not stratified: an earlier version drew u from a low-discrepancy
lattice, which made every row distinct but spread the rows more evenly than any independent sample, so the
holdout's nearest-neighbour ratios were larger than a model's, and the gate's NNDR check refused even rows
drawn from the network itself (BENCHMARKS.md, issue 14).

Reproducibility: row i depends only on (seed, i), never on the chunk size or N: `adult_like_chunk(start,
rows, seed)` is rows [start, start + rows) of the one table of that seed.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

log = logging.getLogger("benchmarks")

Floats = npt.NDArray[np.float64]
Codes = npt.NDArray[np.intp]

# Labels in Adult's spelling; None (last) is Adult's `?`, written as a null.
WORKCLASS_LABELS = ("Federal-gov", "Local-gov", "Never-worked", "Private", "Self-emp-inc", "Self-emp-not-inc",
                    "State-gov", "Without-pay", None)
EDUCATION_LABELS = ("Preschool", "1st-4th", "5th-6th", "7th-8th", "9th", "10th", "11th", "12th", "HS-grad",
                    "Some-college", "Assoc-voc", "Assoc-acdm", "Bachelors", "Masters", "Prof-school", "Doctorate")
MARITAL_LABELS = ("Divorced", "Married-AF-spouse", "Married-civ-spouse", "Married-spouse-absent", "Never-married",
                  "Separated", "Widowed")
OCCUPATION_LABELS = ("Adm-clerical", "Armed-Forces", "Craft-repair", "Exec-managerial", "Farming-fishing",
                     "Handlers-cleaners", "Machine-op-inspct", "Other-service", "Priv-house-serv", "Prof-specialty",
                     "Protective-serv", "Sales", "Tech-support", "Transport-moving", None)
RELATIONSHIP_LABELS = ("Husband", "Not-in-family", "Other-relative", "Own-child", "Unmarried", "Wife")
RACE_LABELS = ("Amer-Indian-Eskimo", "Asian-Pac-Islander", "Black", "Other", "White")
SEX_LABELS = ("Female", "Male")
COUNTRY_LABELS = ("Cambodia", "Canada", "China", "Columbia", "Cuba", "Dominican-Republic", "Ecuador", "El-Salvador",
                  "England", "France", "Germany", "Greece", "Guatemala", "Haiti", "Holand-Netherlands", "Honduras",
                  "Hong", "Hungary", "India", "Iran", "Ireland", "Italy", "Jamaica", "Japan", "Laos", "Mexico",
                  "Nicaragua", "Outlying-US(Guam-USVI-etc)", "Peru", "Philippines", "Poland", "Portugal",
                  "Puerto-Rico", "Scotland", "South", "Taiwan", "Thailand", "Trinadad&Tobago", "United-States",
                  "Vietnam", "Yugoslavia", None)
CLASS_LABELS = ("<=50K", ">50K")

# Adult's counts (adult.data, 32,561 rows). Age bands start at 17, 25, 35, 45, 55, 65; "school" is
# below HS-grad, HS-grad, Some-college/Assoc, Bachelors, above. Rows of a table are its parents' states.
AGE_BAND_STARTS = (17, 25, 35, 45, 55, 65)
AGE_COUNTS = (  # ages 17..90 (Adult tops age at 90)
    395, 550, 712, 753, 720, 765, 877, 798, 841, 785, 835, 867, 813, 861, 888, 828, 875, 886, 876, 898, 858, 827,
    816, 794, 808, 780, 770, 724, 734, 737, 708, 543, 577, 602, 595, 478, 464, 415, 419, 366, 358, 366, 355, 312,
    300, 258, 230, 208, 178, 150, 151, 120, 108, 89, 72, 67, 64, 51, 45, 46, 29, 23, 22, 22, 20, 12, 6, 10, 3, 1, 1,
    3, 0, 43,
)
SEX = ((2508, 3062), (2800, 5679), (2409, 5742), (1700, 4153), (913, 2259), (441, 895))  # [age band]
RELATIONSHIP = (  # [sex * 6 + age band]
    (0, 617, 140, 1486, 175, 90), (1, 1071, 94, 500, 664, 470), (0, 768, 63, 170, 889, 519),
    (0, 655, 61, 69, 607, 308), (0, 470, 42, 15, 239, 147), (0, 294, 30, 5, 80, 32),
    (328, 680, 199, 1763, 92, 0), (2944, 1572, 208, 726, 228, 1), (4060, 1131, 71, 240, 239, 1),
    (3293, 603, 42, 70, 145, 0), (1853, 306, 17, 21, 62, 0), (714, 138, 14, 3, 26, 0),
)
MARITAL = (  # [relationship * 3 + age band // 2]
    (0, 7, 3266, 0, 0, 0, 0), (0, 2, 7351, 0, 0, 0, 0), (0, 0, 2567, 0, 0, 0, 0),  # Husband
    (461, 0, 13, 69, 3257, 130, 10), (1481, 0, 3, 107, 1235, 226, 105), (462, 0, 1, 35, 214, 64, 432),
    (21, 1, 70, 12, 516, 21, 0), (66, 0, 40, 19, 72, 29, 11), (23, 0, 14, 1, 23, 5, 37),
    (146, 1, 72, 33, 4165, 55, 3), (162, 0, 23, 12, 300, 42, 10), (20, 0, 0, 0, 20, 2, 2),  # Own-child
    (342, 0, 0, 36, 598, 167, 16), (1110, 0, 0, 77, 261, 258, 174), (149, 0, 0, 17, 22, 26, 193),
    (0, 7, 554, 0, 0, 0, 0), (0, 4, 824, 0, 0, 0, 0), (0, 1, 178, 0, 0, 0, 0),  # Wife
)
COUNTRY = (
    19, 121, 75, 59, 95, 70, 28, 106, 90, 29, 137, 29, 64, 44, 1, 13, 20, 13, 100, 43, 24, 73, 81, 62, 18, 643, 34,
    14, 31, 198, 60, 37, 114, 12, 80, 51, 18, 19, 29170, 67, 16, 583,
)
RACE = ((15, 747, 292, 142, 2195), (296, 292, 2832, 129, 25621))  # [born in the United States]
EDUCATION = (  # [age band]
    (8, 14, 44, 57, 91, 269, 503, 184, 1619, 2018, 136, 129, 476, 21, 0, 1),
    (10, 33, 72, 105, 111, 200, 230, 88, 2846, 1748, 439, 341, 1743, 335, 115, 63),
    (10, 32, 66, 89, 101, 142, 166, 71, 2609, 1662, 420, 332, 1563, 575, 208, 105),
    (14, 35, 68, 135, 83, 124, 139, 48, 1901, 1113, 252, 183, 974, 510, 138, 136),
    (4, 36, 52, 159, 88, 141, 87, 35, 1094, 532, 92, 65, 430, 213, 75, 69),
    (5, 18, 31, 101, 40, 57, 50, 7, 432, 218, 43, 17, 169, 69, 40, 39),
)
SCHOOL = (0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 2, 2, 3, 4, 4, 4)  # [education]
OCCUPATION = (  # [sex * 5 + school]
    (109, 0, 34, 28, 17, 38, 173, 437, 65, 21, 6, 192, 9, 10, 182),
    (968, 0, 102, 266, 21, 89, 271, 725, 49, 100, 22, 422, 58, 51, 246),
    (1161, 0, 69, 405, 24, 33, 89, 545, 21, 338, 34, 460, 195, 27, 326),
    (267, 0, 14, 332, 3, 4, 14, 80, 5, 579, 14, 163, 75, 2, 67),
    (32, 0, 3, 128, 0, 0, 3, 13, 1, 477, 0, 26, 11, 0, 20),
    (67, 1, 651, 80, 241, 347, 321, 398, 4, 36, 28, 161, 11, 336, 250),
    (397, 4, 1820, 541, 383, 522, 752, 556, 1, 133, 193, 647, 101, 774, 287),
    (480, 2, 1166, 769, 216, 286, 317, 429, 1, 400, 250, 799, 277, 323, 298),
    (239, 1, 212, 1037, 74, 46, 55, 101, 2, 916, 86, 646, 155, 60, 106),
    (50, 1, 28, 480, 15, 5, 7, 11, 0, 1140, 16, 134, 36, 14, 61),
)
WORKCLASS = (  # [occupation]: an unknown occupation has an unknown workclass, or Never-worked
    (317, 283, 0, 2833, 31, 50, 253, 3, 0), (9, 0, 0, 0, 0, 0, 0, 0, 0), (64, 146, 0, 3195, 106, 531, 56, 1, 0),
    (180, 214, 0, 2691, 400, 392, 189, 0, 0), (8, 29, 0, 455, 51, 430, 15, 6, 0), (23, 47, 0, 1273, 2, 15, 9, 1, 0),
    (14, 12, 0, 1913, 13, 36, 13, 1, 0), (35, 193, 0, 2740, 27, 175, 124, 1, 0), (0, 0, 0, 149, 0, 0, 0, 0, 0),
    (175, 705, 0, 2313, 160, 373, 414, 0, 0), (28, 304, 0, 190, 5, 6, 116, 0, 0),
    (14, 7, 0, 2942, 291, 385, 11, 0, 0), (68, 38, 0, 736, 3, 26, 57, 0, 0), (25, 115, 0, 1266, 27, 122, 41, 1, 0),
    (0, 0, 7, 0, 0, 0, 0, 0, 1836),
)
HOURS = (  # 1..99 hours: Adult's spikes at 40, 50, 45, 60, ... kept as they are
    20, 32, 39, 54, 60, 64, 26, 145, 18, 278, 11, 173, 23, 34, 404, 205, 29, 75, 14, 1224, 24, 44, 21, 252, 674, 30,
    30, 86, 7, 1149, 5, 266, 39, 28, 1297, 220, 149, 476, 38, 15217, 36, 219, 151, 212, 1824, 82, 49, 517, 29, 2819,
    13, 138, 25, 41, 694, 97, 17, 28, 5, 1475, 2, 18, 10, 14, 244, 17, 4, 12, 0, 291, 0, 71, 2, 1, 66, 3, 6, 8, 0,
    133, 3, 1, 0, 45, 13, 2, 1, 2, 2, 29, 3, 1, 0, 1, 2, 5, 2, 11, 85,
)
# P(h | sex, age group, school) ~ HOURS[h] * exp(a * (h - 40) / 10 + b * [h == 40]), (a, b) the sum of a
# [sex * 3 + age group (under 25, 25-54, 55+)] tilt and a [school] tilt: a maximum-likelihood fit on Adult.
HOURS_TILT = ((-0.533, 0.005), (-0.092, 0.433), (-0.39, 0.081), (-0.29, 0.065), (0.274, 0.465), (-0.089, 0.113))
HOURS_SCHOOL_TILT = ((-0.168, -0.082), (0.0, 0.0), (-0.031, -0.253), (0.05, -0.415), (0.117, -0.757))
HOURS_GROUP = (0, 1, 1, 1, 2, 2)  # [age band]
# logit P(>50K) = effects[occupation] + [relationship] + slopes . (age/10, (age/10)**2, education-num, hours/10,
# male): a logistic regression on Adult, its occupation effects then shifted by DELTA so that the share of >50K
# in the generated table is Adult's (24.08%).
CLASS_SLOPES = (2.2028, -0.2076, 0.2836, 0.2628, 0.8622)
RELATIONSHIP_EFFECT = (1.643, 0.0, -0.144, -0.926, -0.224, 2.968)
OCCUPATION_EFFECT = (
    -12.341, -12.734, -12.371, -11.564, -13.493, -13.053, -12.714, -13.348, -14.365, -11.851, -11.942, -12.053,
    -11.771, -12.555, -12.7,
)
DELTA = 0.096
# value: (count among <=50K, count among >50K), for the values Adult has at least 10 times; the zeros are
# scaled to those values so that the share of nonzero amounts per class is Adult's.
GAIN_ZEROS = (18330, 5925)
GAIN = {
    594: (34, 0), 1055: (25, 0), 1506: (15, 0), 2174: (48, 0), 2176: (23, 0), 2202: (16, 0), 2354: (11, 0),
    2407: (19, 0), 2463: (11, 0), 2580: (12, 0), 2597: (20, 0), 2635: (11, 0), 2829: (31, 0), 2885: (24, 0),
    2907: (11, 0), 3103: (7, 90), 3137: (37, 0), 3325: (53, 0), 3411: (24, 0), 3464: (23, 0), 3674: (14, 0),
    3781: (12, 0), 3908: (32, 0), 3942: (14, 0), 4064: (42, 0), 4101: (20, 0), 4386: (12, 58), 4416: (12, 0),
    4508: (12, 0), 4650: (41, 0), 4787: (0, 23), 4865: (17, 0), 5013: (69, 0), 5178: (0, 97), 5455: (11, 0),
    6497: (11, 0), 6849: (27, 0), 7298: (0, 246), 7688: (0, 284), 8614: (0, 55), 9386: (0, 22), 10520: (0, 43),
    10605: (0, 12), 13550: (0, 27), 14084: (0, 41), 14344: (0, 26), 15024: (0, 347), 20051: (0, 37), 25236: (0, 11),
    27828: (0, 34), 99999: (0, 159),
}
LOSS_ZEROS = (17927, 5091)  # among rows without a capital gain: Adult never has both
LOSS = {
    625: (12, 0), 1408: (21, 0), 1485: (20, 31), 1504: (18, 0), 1564: (0, 25), 1579: (20, 0), 1590: (40, 0),
    1602: (47, 0), 1628: (15, 0), 1669: (24, 0), 1672: (34, 0), 1719: (22, 0), 1721: (18, 0), 1740: (42, 0),
    1741: (24, 0), 1762: (14, 0), 1848: (0, 51), 1876: (39, 0), 1887: (0, 159), 1902: (13, 189), 1974: (18, 0),
    1977: (0, 168), 1980: (23, 0), 2001: (24, 0), 2002: (21, 0), 2051: (21, 0), 2179: (15, 0), 2258: (12, 13),
    2339: (17, 0), 2377: (9, 11), 2415: (0, 49), 2444: (0, 12), 2559: (0, 12), 2824: (0, 10),
}
# log(fnlwgt) minus its race's shift (median log by race minus the overall median), at probabilities FNLWGT_P.
FNLWGT_RACE_SHIFT = (-0.554, -0.22, 0.144, 0.057, -0.004)
FNLWGT_P = (
    0, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75,
    0.8, 0.85, 0.9, 0.95, 0.975, 0.99, 0.995, 0.999, 1,
)
FNLWGT_LOG_QUANTILES = (
    9.7472, 9.9466, 10.1212, 10.2324, 10.3998, 10.6022, 11.0972, 11.4424, 11.5824, 11.6804, 11.7817, 11.8875,
    11.9728, 12.0409, 12.0915, 12.1425, 12.1864, 12.2337, 12.293, 12.3721, 12.4622, 12.5708, 12.7062, 12.8473,
    12.9702, 13.1383, 13.2596, 13.5448, 14.2148,
)

COLUMNS = ("age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation",
           "relationship", "race", "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country", "class")
LABELS = {"workclass": WORKCLASS_LABELS, "education": EDUCATION_LABELS, "marital-status": MARITAL_LABELS,
          "occupation": OCCUPATION_LABELS, "relationship": RELATIONSHIP_LABELS, "race": RACE_LABELS,
          "sex": SEX_LABELS, "native-country": COUNTRY_LABELS, "class": CLASS_LABELS}
SCHEMA = pa.schema([(name, pa.string() if name in LABELS else pa.int64()) for name in COLUMNS])  # Adult's
_BELOW_ONE = np.nextafter(1.0, 0.0)
_GUIDE = 4096  # guide-table slots per unit of the search key (_Conditional)


def _normalized(counts: npt.ArrayLike) -> Floats:
    """Each row of a table of counts over its sum: P(value | the row's state)."""
    weights = np.atleast_2d(np.asarray(counts, dtype=np.float64))
    return weights / weights.sum(axis=1, keepdims=True)


class _Conditional:
    """P(value | state), one row of probabilities per state, drawn by inverse CDF (`pick`).

    The CDF edges of state s, offset by 2s, make one sorted array, searched for 2s + r. A guide table (which
    edges come before each 1/4096th of the key range) turns the search into a look-up and at most one
    comparison, 5 to 10 times faster than `np.searchsorted`, which serves only the rare crowded slots.
    """

    def __init__(self, prob: Floats) -> None:
        prob = prob.reshape(len(prob), -1)
        states, self.k = prob.shape
        cdf = np.zeros((states, self.k + 1))
        cdf[:, 1:] = np.minimum(np.cumsum(prob, axis=1), 1.0)
        cdf[:, -1] = 1.0
        self.low, self.width = cdf[:, :-1].ravel(), np.diff(cdf, axis=1).ravel()
        self.last = self.k - 1 - np.argmax(prob[:, ::-1] > 0, axis=1)  # each state's last value with weight
        self.edges, repeats = np.unique(2.0 * np.arange(states)[:, None] + cdf[:, 1:-1], return_counts=True)
        self.before = np.concatenate([[0], np.cumsum(repeats)])  # edges <= edges[j - 1], repeats included
        slots = np.arange(2 * states * _GUIDE + 1) / _GUIDE
        self.guide = np.searchsorted(self.edges, slots[:-1], side="right")  # edges <= the slot's start
        self.crowded = np.searchsorted(self.edges, slots[1:]) - self.guide > 1  # more than one edge inside
        self.padded = np.append(self.edges, np.inf)

    def pick(self, r: Floats, state: Codes | int = 0) -> Codes:
        """Each row's value: the one whose CDF slice holds r; r becomes its position in that slice, in [0, 1).

        Every step is monotone in r, so within one state the rows' (value, new r) keep the order of r.
        """
        key = 2.0 * state + r
        slot = (key * _GUIDE).astype(np.intp)
        found = self.guide[slot]
        found += self.padded[found] <= key
        crowded = np.flatnonzero(self.crowded[slot])
        found[crowded] = np.searchsorted(self.edges, key[crowded], side="right")
        value = self.before[found] - state * (self.k - 1)  # as np.searchsorted(all edges, key, side="right")
        value = np.minimum(value, self.last[state])  # rounding at the top edge: never a value without weight
        at = state * self.k + value
        r -= self.low[at]
        r /= self.width[at]
        np.clip(r, 0.0, _BELOW_ONE, out=r)
        return value


def _hours() -> Floats:
    """P(hours - 1 | (sex * 3 + age group) * 5 + school): Adult's pmf, tilted (HOURS_TILT, HOURS_SCHOOL_TILT)."""
    tilt = (np.asarray(HOURS_TILT)[:, None] + np.asarray(HOURS_SCHOOL_TILT)[None]).reshape(-1, 2)
    hours = np.arange(1, 100)
    return _normalized(np.asarray(HOURS) * np.exp(np.outer(tilt[:, 0], (hours - 40) / 10) + np.outer(tilt[:, 1],
                                                                                                 hours == 40)))


def _money() -> Floats:
    """P(gain, loss | class): a capital loss only where there is no capital gain, as in Adult."""
    gain = _normalized(np.column_stack([GAIN_ZEROS, np.array(list(GAIN.values())).T]))  # [class, gain]
    loss = _normalized(np.column_stack([LOSS_ZEROS, np.array(list(LOSS.values())).T]))  # [class, loss]
    no_loss = np.eye(1, loss.shape[1])[None]
    return gain[:, :, None] * np.where(np.arange(gain.shape[1])[None, :, None] > 0, no_loss, loss[:, None, :])


# Columns that share parents are drawn as one joint value (one searchsorted rather than three): in exact
# arithmetic that is drawing them one after another, each given the ones before.
_BAND = np.searchsorted(AGE_BAND_STARTS, np.arange(17, 91), side="right") - 1  # [age - 17]
_AGE = _normalized(AGE_COUNTS)[0]
_FAMILY = np.einsum("bs,sbr,rbm->bsrm", _normalized(SEX), _normalized(RELATIONSHIP).reshape(2, 6, 6),
                    _normalized(MARITAL).reshape(6, 3, 7)[:, np.arange(6) // 2])  # [band, sex, relationship, marital]
_US = COUNTRY_LABELS.index("United-States")
_ORIGIN = _normalized(COUNTRY)[0][:, None] * _normalized(RACE)[(np.arange(len(COUNTRY)) == _US).astype(int)]
_JOB = np.einsum("be,seo,ow->sbeow", _normalized(EDUCATION), _normalized(OCCUPATION).reshape(2, 5, 15)[:, SCHOOL],
                 _normalized(WORKCLASS))  # [sex, band, education, occupation, workclass]
_HOURS, _MONEY = _hours(), _money()  # [(sex * 3 + HOURS_GROUP[band]) * 5 + school, hours - 1], [class, gain, loss]
_DRAW = {name: _Conditional(prob) for name, prob in
         (("age", _AGE[None]), ("family", _FAMILY), ("origin", _ORIGIN[None]), ("job", _JOB.reshape(12, -1)),
          ("hours", _HOURS), ("money", _MONEY))}
_GAIN_VALUES, _LOSS_VALUES = np.array([0, *GAIN]), np.array([0, *LOSS])


def _mix(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64: a bijection of 64-bit words that spreads every input bit over the output (seeds, keys)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _points(start: int, rows: int, seed: int) -> Floats:
    """u_i of rows [start, start + rows): independent uniforms, splitmix64's outputs for the seed (module docstring)."""
    index = np.arange(start, start + rows, dtype=np.uint64)
    state = _mix(np.array([seed], dtype=np.uint64)) + index * np.uint64(0x9E3779B97F4A7C15)
    return (_mix(state) >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _codes(start: int, rows: int, seed: int) -> dict[str, Codes]:
    """The rows as integers and category codes (indices into LABELS), through the network in order."""
    r = _points(start, rows, seed)
    age = _DRAW["age"].pick(r)
    band = _BAND[age]
    sex, relationship, marital = np.unravel_index(_DRAW["family"].pick(r, band), _FAMILY.shape[1:])
    country, race = np.unravel_index(_DRAW["origin"].pick(r), _ORIGIN.shape)
    education, occupation, workclass = np.unravel_index(_DRAW["job"].pick(r, sex * 6 + band), _JOB.shape[2:])
    school = np.asarray(SCHOOL)[education]
    hours = _DRAW["hours"].pick(r, (sex * 3 + np.asarray(HOURS_GROUP)[band]) * 5 + school) + 1
    a, a2, e, h, m = CLASS_SLOPES
    decades = (age + 17) / 10
    logit = (np.asarray(OCCUPATION_EFFECT)[occupation] + DELTA + np.asarray(RELATIONSHIP_EFFECT)[relationship]
             + decades * (a + a2 * decades) + e * (education + 1) + h * hours / 10 + m * sex)
    low_share = np.clip(1 / (1 + np.exp(logit)), 1e-12, 1 - 1e-12)  # P(<=50K): `pick` with two values
    rich = (r >= low_share).astype(np.intp)
    r[:] = np.where(rich, (r - low_share) / (1 - low_share), r / low_share)
    np.clip(r, 0.0, _BELOW_ONE, out=r)
    gain, loss = np.unravel_index(_DRAW["money"].pick(r, rich), _MONEY.shape[1:])
    log_weight = np.interp(r, FNLWGT_P, FNLWGT_LOG_QUANTILES) + np.asarray(FNLWGT_RACE_SHIFT)[race]
    return {"age": age + 17, "workclass": workclass, "fnlwgt": np.floor(np.exp(log_weight)).astype(np.int64),
            "education": education, "education-num": education + 1, "marital-status": marital,
            "occupation": occupation, "relationship": relationship, "race": race, "sex": sex,
            "capital-gain": _GAIN_VALUES[gain], "capital-loss": _LOSS_VALUES[loss], "hours-per-week": hours,
            "native-country": country, "class": rich}


def _table(start: int, rows: int, seed: int) -> pa.Table:
    """Rows [start, start + rows) as Arrow, strings dictionary-encoded (cheap to build and to write)."""
    if start < 0 or rows < 0 or not 0 <= seed < 2**64:
        raise ValueError(f"need start, rows >= 0 and a seed in [0, 2**64), got {start}, {rows} and {seed}")
    codes = _codes(start, rows, seed)
    arrays = []
    for name in COLUMNS:
        if name not in LABELS:
            arrays.append(pa.array(codes[name], pa.int64()))
            continue
        labels, code = LABELS[name], codes[name].astype(np.int32)
        known = [label for label in labels if label is not None]
        unknown = code == len(known) if len(known) < len(labels) else None  # None, last, is Adult's `?`
        arrays.append(pa.DictionaryArray.from_arrays(pa.array(code, mask=unknown), pa.array(known, pa.string())))
    return pa.Table.from_arrays(arrays, names=list(COLUMNS))


def adult_like_chunk(start: int, rows: int, seed: int) -> pd.DataFrame:
    """Rows [start, start + rows) of the table for `seed`, as pandas reads Adult: strings, unknowns as None."""
    return _table(start, rows, seed).cast(SCHEMA).to_pandas()


def write_adult_like(out: Path, rows: int, seed: int = 0, chunk_rows: int = 1_000_000, fmt: str = "parquet") -> Path:
    """Write `rows` rows: a folder of `part-00000.parquet`, ... (one per chunk), or one CSV file; returns `out`.

    One chunk is in memory at a time. A Parquet folder must be new or empty, so that no stale part joins the
    dataset; a CSV file is overwritten.
    Parts are written without the Arrow schema, so readers see Adult's plain strings, not dictionaries.
    """
    if rows < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")
    if chunk_rows < 1 or fmt not in ("parquet", "csv"):
        raise ValueError(f"need chunk_rows >= 1 and fmt parquet or csv, got {chunk_rows} and {fmt!r}")
    starts = range(0, rows, chunk_rows)
    if fmt == "csv":
        out.parent.mkdir(parents=True, exist_ok=True)
        unquoted = pacsv.WriteOptions(include_header=False, quoting_style="none")  # as adult.csv; no label has a ,
        with out.open("wb") as sink:
            sink.write((",".join(COLUMNS) + "\n").encode())
            with pacsv.CSVWriter(sink, SCHEMA, write_options=unquoted) as writer:
                for start in starts:
                    writer.write_table(_table(start, min(chunk_rows, rows - start), seed).cast(SCHEMA))
        return out
    out.mkdir(parents=True, exist_ok=True)
    if any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty: write the parts into a new folder")
    digits = max(5, len(str(len(starts) - 1)))
    for part, start in enumerate(starts):
        table = _table(start, min(chunk_rows, rows - start), seed)
        pq.write_table(table, out / f"part-{part:0{digits}d}.parquet", compression="zstd", store_schema=False)
        log.info("part %d of %d written", part + 1, len(starts))
    return out


def main(argv: list[str] | None = None) -> None:
    """Write the table and print one JSON line: rows, seconds, rows/s, bytes on disk and peak RSS."""
    parser = argparse.ArgumentParser(description="Write a seeded Adult-like table of any size, in chunks.")
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True, help="a new folder (parquet) or a file (csv)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk-rows", type=int, default=1_000_000)
    parser.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    started = time.perf_counter()
    try:
        out = write_adult_like(args.out, args.rows, args.seed, args.chunk_rows, args.format)
    except (ValueError, FileExistsError) as error:
        parser.error(str(error))
    seconds = time.perf_counter() - started
    size = sum(p.stat().st_size for p in out.iterdir()) if out.is_dir() else out.stat().st_size
    print(json.dumps({"rows": args.rows, "out": str(out), "format": args.format, "seconds": round(seconds, 2),
                      "rows_per_s": round(args.rows / seconds), "bytes": size,
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))


if __name__ == "__main__":
    main()
