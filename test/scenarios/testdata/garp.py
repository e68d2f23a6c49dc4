#!/usr/bin/python3
"""Gratuitous ARP with scapy, for the neighbour scenarios.

usage: garp.py IFACE GAP_SECONDS IP=MAC [IP=MAC ...]

Loads scapy, prints "ready", waits for a line on stdin, then broadcasts one
gratuitous ARP request per IP=MAC (sender and target address IP, sender
hardware address MAC; the Ethernet source stays the interface's own), GAP
seconds apart, and prints "sent". An attacker claims an address with its own
MAC and puts the true MAC back the same way.
"""
import sys
import time

from scapy.all import ARP, Ether, conf, get_if_hwaddr, sendp

conf.verb = 0
iface, gap = sys.argv[1], float(sys.argv[2])
own = get_if_hwaddr(iface)
frames = []
for spec in sys.argv[3:]:
    ip, mac = spec.split("=", 1)
    frames.append(Ether(src=own, dst="ff:ff:ff:ff:ff:ff") /
                  ARP(op=1, hwsrc=mac, psrc=ip, hwdst="00:00:00:00:00:00", pdst=ip))
print("ready", flush=True)
sys.stdin.readline()
for i, f in enumerate(frames):
    if i:
        time.sleep(gap)
    sendp(f, iface=iface)
print("sent", flush=True)
