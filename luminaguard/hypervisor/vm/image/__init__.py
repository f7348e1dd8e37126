"""The guest a micro-VM boots: recipes, and the kernel and initramfs built from them."""
