"""placeholder until written"""
DESCRIPTION = "todo"

def read(path, loader, id_prefix="", progress=True):
    raise NotImplementedError
