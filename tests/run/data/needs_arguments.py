from allotment import resources


@resources(cpu=1)
def wants(path: str) -> None:
    print(path)
