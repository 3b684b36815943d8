"""dnahnet.nn"""
