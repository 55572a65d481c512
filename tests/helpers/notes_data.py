"""Worked examples of the source notes, transcribed by hand as plain data.

Every number below is copied as the note prints it (including the note's own
slips, which are pointed out in comments and handled explicitly by the tests).
Matrices are nested lists in the note's own orientation.  Where a class has a
``decimals`` mapping, it gives for each printed quantity the number of decimals
the note prints: an int when every entry has the same count, otherwise a
nested list with one count per entry.

Nothing here is computed: ``tests/test_notes.py`` recomputes all of it through
the public API of ``backprop_lab``.
"""

from __future__ import annotations


class Note003Sigmoid:
    """Note 003: 2-2-2 sigmoid network, full worked example printed to 8 decimals.

    Convention: a constant 1 is *prepended* to each layer's input, so each
    weight matrix has shape (out, 1 + in) with the bias as its FIRST column
    (``bias_column="first"``).  Loss ``L = 1/2 ||y - a2||^2`` (``"half_sse"``),
    plain gradient descent with learning rate ``c = 0.1``.

    The note works with 8-decimal intermediates; the few entries printed with
    more digits (delta2, delta1) are not significant past the 8th decimal.
    """

    W1 = [[0.1, -0.2, 0.3], [-0.4, 0.5, -0.6]]
    W2 = [[0.15, -0.25, 0.35], [-0.45, 0.55, -0.65]]
    x = [1.0, 0.0]
    y = [1.0, 0.0]
    lr = 0.1

    X1 = [1.0, 1.0, 0.0]  # input with the prepended 1
    net1 = [-0.1, 0.1]
    a1 = [0.47502081, 0.52497919]
    X2 = [1.0, 0.47502081, 0.52497919]
    net2 = [0.21498751, -0.52997502]
    a2 = [0.55354082, 0.37052271]
    dL_da2 = [-0.44645918, 0.37052271]  # (0.1) in the note
    delta2 = [-0.110334967, 0.086419099]
    dW2 = [
        [-0.110335, -0.0524114, -0.0579236],
        [0.0864191, 0.0410509, 0.0453682],
    ]
    W2_new = [
        [0.1610335, -0.24475886, 0.35579236],
        [-0.45864191, 0.54589491, -0.65453682],
    ]
    dL_dX2 = [-0.05543884, 0.07511425, -0.09478965]
    dL_da1 = [0.07511425, -0.09478965]  # (0.2): dL_dX2 without the bias entry
    delta1 = [0.0187316942, -0.023638267]
    dW1 = [
        [0.0187317, 0.0187317, 0.0],
        [-0.0236383, -0.0236383, 0.0],
    ]
    W1_new = [
        [0.09812683, -0.20187317, 0.3],
        [-0.39763617, 0.50236383, -0.6],
    ]

    decimals = {
        "net1": 1,
        "a1": 8,
        "X2": [0, 8, 8],
        "net2": 8,
        "a2": 8,
        "dL_da2": 8,
        "delta2": 9,
        "dW2": [[6, 7, 7], [7, 7, 7]],
        "W2_new": [[7, 8, 8], [8, 8, 8]],
        "dL_dX2": 8,
        "dL_da1": 8,
        "delta1": [10, 9],
        "dW1": [[7, 7, 0], [7, 7, 0]],  # the zeros are exact (input x[1] = 0)
        "W1_new": [[8, 8, 1], [8, 8, 1]],  # the last column is exactly unchanged
    }


class Note003Softmax:
    """Note 003, remark (5): the same network with a softmax output layer.

    Convention as in :class:`Note003Sigmoid` (bias first column, W of shape
    (out, 1 + in), lr 0.1) but the output activation is softmax and the loss
    is categorical cross-entropy ``L = -sum_k y_k log a2_k``
    (``"cross_entropy"``), for which the note redefines only the last delta:
    ``delta2 = (sum_j y_j) a2 - y``.

    The note rounds a2 (and therefore delta2) to 5 decimals and carries that
    rounded delta2 through the rest of the computation.
    """

    W1 = Note003Sigmoid.W1
    W2 = Note003Sigmoid.W2
    x = Note003Sigmoid.x
    y = Note003Sigmoid.y
    lr = 0.1

    net2 = [0.21498751, -0.52997502]
    exp_net2 = [1.2398464, 0.58861967]
    sum_exp_net2 = 1.828466
    a2 = [0.67808, 0.32192]
    delta2 = [-0.32192, 0.32192]
    dW2 = [
        [-0.32192, -0.1529187, -0.1690013],
        [0.32192, 0.1529187, 0.1690013],
    ]
    W2_new = [
        [0.182192, -0.23470813, 0.36690013],
        [-0.482192, 0.53470813, -0.66690013],
    ]
    dL_dX2 = [-0.193152, 0.257536, -0.32192]
    dL_da1 = [0.257536, -0.32192]
    delta1 = [0.06422331, -0.08027913]
    dW1 = [
        [0.06422331, 0.06422331, 0.0],
        [-0.08027913, -0.08027913, 0.0],
    ]
    W1_new = [
        [0.09357767, -0.20642233, 0.3],
        [-0.39197209, 0.50802791, -0.6],
    ]

    decimals = {
        "net2": 8,
        "exp_net2": [7, 8],
        "sum_exp_net2": 6,
        "a2": 5,
        "delta2": 5,
        "dW2": [[5, 7, 7], [5, 7, 7]],
        "W2_new": [[6, 8, 8], [6, 8, 8]],
        "dL_dX2": [6, 6, 5],
        "dL_da1": [6, 5],
        "delta1": 8,
        "dW1": [[8, 8, 0], [8, 8, 0]],
        "W1_new": [[8, 8, 1], [8, 8, 1]],
    }


class Note004:
    """Note 004: 2-4-3-2 sigmoid network without biases, layers named a, b, c, d.

    Convention: W_l of shape (out, in) with ``net_l = W_l @ out_{l-1}``, no
    biases.  Error ``E = sum 1/2 (target - out)^2`` (``"half_sse"``), one
    example: input (1, 0), target (0, 1); learning rate 0.5.  Gradient
    matrices are ``dE/dnet_l (column) * out_{l-1} (row)``.

    Every printed number has 4 decimals and the note rounds every intermediate
    to 4 decimals (half up) before using it, so its later numbers differ from
    exact arithmetic in the 4th decimal.

    Slips in the note, transcribed as printed:
    - ``net_d[0]`` is printed 0.9441; its own rounded inputs give 0.94401
      (exact arithmetic: 0.94398), so it is one unit high in the 4th decimal.
    - ``dE_dout_c[2]`` is printed 0.0529, but 0.5*0.1452 + 0.8*(-0.0221) =
      0.0549 and the note's next step (``dE_dnet_c[2]`` = 0.0070 =
      0.0549 * 0.1266) uses 0.0549: the two digits are transposed in print.
    - the gradient of W_d is called W_cg right after it is computed, and the
      gradient of W_b is printed under the label W_cg; they are ``W_dg`` and
      ``W_bg`` here.
    - it writes sig'(out_c) once where sig'(net_c) is meant.
    Only the update of W_c is printed; W_b and W_d are updated "the same way".
    """

    W_b = [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6], [0.7, 0.8]]
    W_c = [
        [0.25, 0.30, 0.35, 0.40],
        [0.45, 0.50, 0.55, 0.60],
        [0.65, 0.70, 0.75, 0.80],
    ]
    W_d = [[0.3, 0.4, 0.5], [0.6, 0.7, 0.8]]
    x = [1.0, 0.0]
    target = [0.0, 1.0]
    lr = 0.5

    # forward pass
    net_b = [0.1, 0.3, 0.5, 0.7]
    out_b = [0.5250, 0.5744, 0.6225, 0.6682]
    net_c = [0.7887, 1.2667, 1.7448]
    out_c = [0.6876, 0.7802, 0.8513]
    net_d = [0.9441, 1.6397]  # net_d[0]: see the class docstring
    out_d = [0.7199, 0.8375]

    # output layer
    dE_dnet_d = [0.1452, -0.0221]
    W_dg = [
        [0.0998, 0.1133, 0.1236],
        [-0.0152, -0.0172, -0.0188],
    ]

    # layer c
    dE_dout_c = [0.0303, 0.0426, 0.0529]  # [2] is a print slip for 0.0549
    dsig_net_c = [0.2148, 0.1715, 0.1266]  # sig'(net_c) = out_c (1 - out_c)
    dE_dnet_c = [0.0065, 0.0073, 0.0070]
    W_cg = [
        [0.0034, 0.0037, 0.0040, 0.0043],
        [0.0038, 0.0042, 0.0045, 0.0049],
        [0.0037, 0.0040, 0.0044, 0.0047],
    ]

    # layer b
    dE_dout_b = [0.0095, 0.0105, 0.0115, 0.0126]
    dsig_net_b = [0.2494, 0.2445, 0.2350, 0.2217]  # sig'(net_b)
    dE_dnet_b = [0.0024, 0.0026, 0.0027, 0.0028]
    W_bg = [  # printed under the label W_cg
        [0.0024, 0.0],
        [0.0026, 0.0],
        [0.0027, 0.0],
        [0.0028, 0.0],
    ]

    # update of W_c with l = 0.5
    lr_W_cg = [  # W_cg * l
        [0.0017, 0.0019, 0.0020, 0.0022],
        [0.0019, 0.0021, 0.0023, 0.0025],
        [0.0019, 0.0020, 0.0022, 0.0024],
    ]
    W_c_new = [
        [0.2483, 0.2981, 0.3480, 0.3978],
        [0.4481, 0.4979, 0.5477, 0.5975],
        [0.6481, 0.6980, 0.7478, 0.7976],
    ]

    decimals = 4

    # Known print slips: (quantity, flat index, value the note actually uses).
    slips = {
        ("net_d", 0): 0.9440,
        ("dE_dout_c", 2): 0.0549,
    }


class Note004SwapTask:
    """Note 004, section 5.1: the logic-gate task the network should learn.

    The two inputs are swapped: ``(a1, a2) -> (target_d1, target_d2) = (a2, a1)``.
    Same 2-4-3-2 sigmoid network without biases and half squared error; the
    note says the network, starting from :class:`Note004`'s weights, can learn it.
    """

    inputs = [[1.0, 1.0], [1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]
    targets = [[1.0, 1.0], [0.0, 1.0], [1.0, 0.0], [0.0, 0.0]]
