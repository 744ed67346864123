"""Registries that defer to BasicSR's: the plugin's modules register as BasicSR's do, without importing BasicSR.

``import basicsr.anything`` runs ``basicsr/__init__.py``, which imports all of BasicSR (torchvision included,
seconds of start-up), so the archs and the dataset keep BasicSR's convention (``@ARCH_REGISTRY.register()``)
through these proxies: a class registered here goes into BasicSR's registry of the same name at once if
``basicsr.utils.registry`` is loaded, else when :func:`nodesr_arch.compat.register` runs (on ``import basicsr``
or a lookup of one of :data:`PLUGIN_TYPES`). ``nodesr infer`` builds the plugin's networks from here alone.
Ground floor: the standard library only.
"""
import importlib
import sys

#: Every name ``nodesr_arch`` registers, per BasicSR registry (a test keeps this in step with the package).
PLUGIN_TYPES = {
    'ARCH_REGISTRY': ('EDSRBody', 'LIIF', 'MetaRDN', 'MetaSR', 'NODERDN', 'NODESR', 'NODEVDSR', 'RDN', 'RDNBody',
                      'RDNt', 'VDSR', 'VDSRBody', 'VDSRt'),
    'DATASET_REGISTRY': ('ContinuousScalePairedDataset', ),
    'MODEL_REGISTRY': ('NODESRModel', ),
}


class DeferredRegistry:
    """A name -> class map that forwards every registration to BasicSR's registry ``name`` once it exists.

    Args:
        name (str): The BasicSR registry's name in ``basicsr.utils.registry`` (``'ARCH_REGISTRY'``...).
    """

    def __init__(self, name):
        self._name = name
        self._obj_map = {}

    def basicsr_registry(self, load=False):
        """BasicSR's registry of this name, or None while ``basicsr.utils.registry`` is not imported.

        Args:
            load (bool): Import BasicSR when it is not imported yet (the hook, installed by ``import
                nodesr_arch``, applies the fixes and registers the plugin into it).
        """
        if load:
            importlib.import_module('basicsr.utils.registry')
        return getattr(sys.modules.get('basicsr.utils.registry'), self._name, None)

    def register(self, obj=None):
        """Register ``obj`` under its ``__name__``; without ``obj``, a class decorator (BasicSR's signature)."""
        if obj is None:
            def deco(cls):
                self._add(cls)
                return cls

            return deco
        self._add(obj)

    def _add(self, obj):
        name = obj.__name__
        assert name not in self._obj_map, f"An object named '{name}' was already registered in '{self._name}' registry!"
        self._obj_map[name] = obj
        real = self.basicsr_registry()
        if real is not None:
            real.register(obj)

    def forward(self):
        """Register every class of this proxy that BasicSR's registry does not hold yet (BasicSR must be loaded)."""
        real = self.basicsr_registry()
        for name, obj in self._obj_map.items():
            if real._obj_map.get(name) is not obj:  # a different class of the same name: BasicSR's assertion
                real.register(obj)

    def get(self, name):
        """The class registered as ``name`` here, else BasicSR's (importing BasicSR for other names)."""
        if name in self._obj_map:
            return self._obj_map[name]
        return self.basicsr_registry(load=True).get(name)

    def __contains__(self, name):
        return name in self._obj_map

    def keys(self):
        return self._obj_map.keys()


ARCH_REGISTRY = DeferredRegistry('ARCH_REGISTRY')
DATASET_REGISTRY = DeferredRegistry('DATASET_REGISTRY')
