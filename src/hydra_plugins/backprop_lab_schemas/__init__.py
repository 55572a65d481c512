"""backprop-lab's typed config schemas, stored in Hydra's ConfigStore when Hydra starts.

Hydra imports every module under ``hydra_plugins`` when it starts, through
``@hydra.main`` and through the compose API alike, so a config composed from
backprop-lab's ``conf/`` finds the schemas its defaults lists name
(``_schema_train``, ``schema/optimizer/adam``, ...) however Hydra was started.
"""

from backprop_lab.apps._schemas import register

register()
