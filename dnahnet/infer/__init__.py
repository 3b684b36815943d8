"""dnahnet.infer"""
