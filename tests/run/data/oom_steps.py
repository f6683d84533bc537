"""A step over its memory: 160 MiB touched under a 96 MiB cap, which grows x2 after the OOM kill."""

from allotment import resources

MIB = 1024 * 1024


@resources(memory="96Mi", retry_memory_factor=2)
def hungry() -> int:
    block = bytearray(160 * MIB)
    for i in range(0, len(block), 4096):
        block[i] = 1
    return len(block) // MIB
