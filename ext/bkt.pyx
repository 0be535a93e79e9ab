"""Cython kernels of Bayesian knowledge tracing with forgetting: the Baum-Welch E step and the
one-step-ahead forward pass.

em_statistics and forward_predict return what ext/bkt_ref.py's functions of the same names return
(to rounding); the reference states the model, this module only makes it fast. Both loops run
without the GIL over typed memoryviews.
"""

from libc.math cimport log

import numpy as np

from ext.bkt_ref import N_STATS


def em_statistics(const signed char[::1] correct, const long long[::1] seq_starts,
                  const int[::1] seq_skill, const double[:, ::1] params):
    cdef Py_ssize_t n = correct.shape[0]
    stats_array = np.zeros((params.shape[0], N_STATS))
    # Scaled forward values of every row (columns: not mastered, mastered) and the scales.
    work_array = np.empty((n, 3))
    cdef double[:, ::1] stats = stats_array
    cdef double[:, ::1] work = work_array
    with nogil:
        _em(correct, seq_starts, seq_skill, params, stats, work)
    return stats_array


cdef void _em(const signed char[::1] correct, const long long[::1] seq_starts,
              const int[::1] seq_skill, const double[:, ::1] params, double[:, ::1] stats,
              double[:, ::1] work) noexcept nogil:
    cdef Py_ssize_t k, t, begin, end, s
    cdef double prior, learn, forget, guess, slip
    cdef double b0, b1, e0, e1, total, a0, a1, g0, g1, w0, w1, nb0, nb1
    cdef int o
    for k in range(seq_skill.shape[0]):
        begin = seq_starts[k]
        end = seq_starts[k + 1]
        if end <= begin:
            continue
        s = seq_skill[k]
        prior = params[s, 0]
        learn = params[s, 1]
        forget = params[s, 2]
        guess = params[s, 3]
        slip = params[s, 4]
        b0 = 1.0 - prior
        b1 = prior
        for t in range(begin, end):
            if t > begin:
                a0 = work[t - 1, 0]
                a1 = work[t - 1, 1]
                b0 = a0 * (1.0 - learn) + a1 * forget
                b1 = a0 * learn + a1 * (1.0 - forget)
            o = correct[t]
            if o:
                e0 = b0 * guess
                e1 = b1 * (1.0 - slip)
            else:
                e0 = b0 * (1.0 - guess)
                e1 = b1 * slip
            total = e0 + e1
            work[t, 0] = e0 / total
            work[t, 1] = e1 / total
            work[t, 2] = total
            stats[s, 10] += log(total)
        stats[s, 1] += 1.0
        nb0 = 1.0
        nb1 = 1.0
        t = end - 1
        while t >= begin:
            o = correct[t]
            g0 = work[t, 0] * nb0
            g1 = work[t, 1] * nb1
            if t == begin:
                stats[s, 0] += g1
            stats[s, 6] += g0 * o
            stats[s, 7] += g0
            stats[s, 8] += g1 * (1 - o)
            stats[s, 9] += g1
            if t < end - 1:
                stats[s, 3] += g0
                stats[s, 5] += g1
            if t > begin:
                if o:
                    w0 = guess * nb0 / work[t, 2]
                    w1 = (1.0 - slip) * nb1 / work[t, 2]
                else:
                    w0 = (1.0 - guess) * nb0 / work[t, 2]
                    w1 = slip * nb1 / work[t, 2]
                a0 = work[t - 1, 0]
                a1 = work[t - 1, 1]
                stats[s, 2] += a0 * learn * w1
                stats[s, 4] += a1 * forget * w0
                nb0 = (1.0 - learn) * w0 + learn * w1
                nb1 = forget * w0 + (1.0 - forget) * w1
            t -= 1


def forward_predict(const signed char[::1] correct, const long long[::1] seq_starts,
                    const int[::1] seq_skill, const double[:, ::1] params):
    predicted_array = np.empty(correct.shape[0])
    final_array = np.empty(seq_skill.shape[0])
    cdef double[::1] predicted = predicted_array
    cdef double[::1] final = final_array
    with nogil:
        _forward(correct, seq_starts, seq_skill, params, predicted, final)
    return predicted_array, final_array


cdef void _forward(const signed char[::1] correct, const long long[::1] seq_starts,
                   const int[::1] seq_skill, const double[:, ::1] params, double[::1] predicted,
                   double[::1] final) noexcept nogil:
    cdef Py_ssize_t k, t, s
    cdef double mastery, learn, forget, guess, slip, p, posterior
    for k in range(seq_skill.shape[0]):
        s = seq_skill[k]
        mastery = params[s, 0]
        learn = params[s, 1]
        forget = params[s, 2]
        guess = params[s, 3]
        slip = params[s, 4]
        for t in range(seq_starts[k], seq_starts[k + 1]):
            p = mastery * (1.0 - slip) + (1.0 - mastery) * guess
            predicted[t] = p
            if correct[t]:
                posterior = mastery * (1.0 - slip) / p
            else:
                posterior = mastery * slip / (1.0 - p)
            mastery = posterior * (1.0 - forget) + (1.0 - posterior) * learn
        final[k] = mastery
