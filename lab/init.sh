#!/bin/busybox sh
# The crash lab guest's /init (busybox only). It is written into the initramfs by
# `kcrash lab setup`; everything it does is steered by the kernel command line:
#
#   lab_name=NAME        a label printed to the kernel log once netconsole is up
#   lab_trigger=T        an LKDTM crash type written to provoke-crash/DIRECT, "sysrq-c"
#                        (echo c > /proc/sysrq-trigger), "wait" (read one trigger per line
#                        from /dev/ttyS1, which the host drives) or "shell"
#   lab_nc=LIST          netconsole targets, comma separated: plain@PORT (module parameter:
#                        replays the ring buffer), ext@PORT (configfs, extended format);
#                        "none" for no netconsole
#   lab_dest=IP          where netconsole sends (default 10.0.2.2, QEMU's user-net host)
#   lab_wait=SECONDS     how long to wait after a trigger that did not panic (default 20)
#   lab_repeat=N         fire the trigger N times, 0.3 s apart (default 1): WRITE_AFTER_FREE
#                        is only noticed when slub_debug hands the written object out again,
#                        which a single attempt does about half the time
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null

param() {
	for kv in $(cat /proc/cmdline); do
		case "$kv" in "$1="*) echo "${kv#*=}"; return ;; esac
	done
	echo "$2"
}
up() { cut -d' ' -f1 /proc/uptime; }
say() { echo "LAB: $* uptime=$(up)"; }

NAME=$(param lab_name guest)
TRIGGER=$(param lab_trigger shell)
NC=$(param lab_nc none)
DEST=$(param lab_dest 10.0.2.2)
WAIT=$(param lab_wait 20)
REPEAT=$(param lab_repeat 1)
say "init $NAME trigger=$TRIGGER nc=$NC"

# Drivers first (the list is in dependency order); netconsole and lkdtm come later.
while read -r ko; do
	case "$ko" in netconsole.ko|lkdtm.ko) ;; *) insmod "/lib/modules/$ko" ;; esac
done < /lib/modules/load-order

ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
# netpoll drops what it is given before the link has carrier.
n=0
while [ "$(cat /sys/class/net/eth0/carrier 2>/dev/null)" != 1 ] && [ $n -lt 100 ]; do
	sleep 0.05; n=$((n + 1))
done
say "eth0 up"

if [ "$NC" != none ]; then
	mount -t configfs configfs /sys/kernel/config
	plain=""
	i=0
	for target in $(echo "$NC" | tr , ' '); do
		port=${target#*@}
		i=$((i + 1))
		case "$target" in
		plain@*)
			# src-port@src-ip/dev,tgt-port@tgt-ip/ (Documentation/networking/netconsole.rst)
			plain="${plain:+$plain;}$((6660 + i))@10.0.2.15/eth0,$port@$DEST/" ;;
		esac
	done
	if [ -n "$plain" ]; then
		insmod /lib/modules/netconsole.ko "netconsole=$plain"
	else
		insmod /lib/modules/netconsole.ko
	fi
	i=0
	for target in $(echo "$NC" | tr , ' '); do
		port=${target#*@}
		i=$((i + 1))
		case "$target" in
		ext@*)
			t=/sys/kernel/config/netconsole/ext$i
			mkdir "$t"
			echo eth0 > "$t/dev_name"
			echo $((6670 + i)) > "$t/local_port"
			echo 10.0.2.15 > "$t/local_ip"
			echo "$DEST" > "$t/remote_ip"
			echo "$port" > "$t/remote_port"
			echo 1 > "$t/extended"
			echo 1 > "$t/enabled" ;;
		esac
	done
	say "netconsole $NC to $DEST"
fi

insmod /lib/modules/lkdtm.ko
mount -t debugfs debugfs /sys/kernel/debug
echo 8 > /proc/sys/kernel/printk
echo "kcrash-lab: guest $NAME ready" > /dev/kmsg

fire() {
	say "trigger $1"
	case "$1" in
	sysrq-c) echo c > /proc/sysrq-trigger ;;
	# In the background: HUNG_TASK and the lockups never return.
	*) (echo "$1" > /sys/kernel/debug/provoke-crash/DIRECT) & ;;
	esac
}

case "$TRIGGER" in
shell)
	exec setsid cttyhack sh ;;
wait)
	# clocal: the port has no carrier, and a blocking open would wait for one.
	stty -F /dev/ttyS1 clocal -echo 2>/dev/null
	exec 3< /dev/ttyS1
	say "waiting for a trigger on ttyS1"
	while read -r cmd <&3; do
		[ -n "$cmd" ] && fire "$cmd"
	done ;;
*)
	fire "$TRIGGER"
	n=1
	while [ $n -lt "$REPEAT" ]; do
		sleep 0.3
		fire "$TRIGGER"
		n=$((n + 1))
	done ;;
esac
sleep "$WAIT"
say "no panic after ${WAIT}s, powering off"
poweroff -f
