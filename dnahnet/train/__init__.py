"""dnahnet.train"""
