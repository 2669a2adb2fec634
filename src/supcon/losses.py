"""placeholder during bootstrap"""
def supcon_loss(*a, **k): raise NotImplementedError
class SupConLoss: pass
