#!/bin/busybox sh
# The crash lab guest's /init (busybox only). It is written into the initramfs by
# `kcrash lab setup`; everything it does is steered by the kernel command line:
#
#   lab_name=NAME        a label printed to the kernel log once netconsole is up
#   lab_trigger=T        an LKDTM crash type written to provoke-crash/DIRECT, "sysrq-c"
#                        (echo c > /proc/sysrq-trigger), "wait" (read one trigger per line
#                        from /dev/ttyS1, which the host drives), "idle" (stay up: a lab
#                        target) or "shell"
#   lab_nc=LIST          netconsole targets, comma separated: plain@PORT (module parameter:
#                        replays the ring buffer), ext@PORT (configfs, extended format);
#                        "none" for no netconsole
#   lab_dest=IP          where netconsole sends (default 10.0.2.2, QEMU's user-net host)
#   lab_wait=SECONDS     how long to wait after a trigger that did not panic (default 20)
#   lab_repeat=N         fire the trigger N times, 0.3 s apart (default 1): WRITE_AFTER_FREE
#                        is only noticed when slub_debug hands the written object out again,
#                        which a single attempt does about half the time
#   lab_load=M,M         load the lab's own modules (netrace, hwfault) once the network is
#                        up, each with the M.key=value parameters of the command line
#                        (busybox insmod does not read them from /proc/cmdline itself)
#   lab_ramoops=ADDR,SIZE
#                        load ramoops on that RAM (reserve it with memmap=SIZE$ADDR); a boot
#                        that finds pstore records prints each one (base64, between
#                        "LAB: pstore-record NAME BYTES" and "LAB: pstore-end NAME") and
#                        powers off instead of firing the trigger again
#   lab_busy=1           keep the kernel busy in the background (file system walks, process
#                        creation), so corrupted objects are used soon after a bit flip
#   lab_mce_poll=SECONDS poll the machine-check banks this often (corrected errors)
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

# modparams M: the M.key=value words of the command line, as key=value.
modparams() {
	for kv in $(cat /proc/cmdline); do
		case "$kv" in "$1."*=*) echo "${kv#*.}" ;; esac
	done
}

NAME=$(param lab_name guest)
TRIGGER=$(param lab_trigger shell)
NC=$(param lab_nc none)
DEST=$(param lab_dest 10.0.2.2)
WAIT=$(param lab_wait 20)
REPEAT=$(param lab_repeat 1)
LOAD=$(param lab_load "")
RAMOOPS=$(param lab_ramoops "")
say "init $NAME trigger=$TRIGGER nc=$NC"

# Drivers first (the list is in dependency order); netconsole, lkdtm, ramoops and the
# lab's own modules come later, when asked for.
while read -r ko; do
	case "$ko" in netconsole.ko|lkdtm.ko|ramoops.ko|netrace.ko|hwfault.ko) ;; *) insmod "/lib/modules/$ko" ;; esac
done < /lib/modules/load-order

PSTORE_FOUND=0
if [ -n "$RAMOOPS" ]; then
	# ramoops.c: the dmesg records share mem_size in record_size pieces; no ECC, so a
	# record reads back byte for byte.
	insmod /lib/modules/ramoops.ko mem_address="${RAMOOPS%,*}" mem_size="${RAMOOPS#*,}" \
		record_size=0x10000 console_size=0 ftrace_size=0 pmsg_size=0 ecc=0
	mkdir -p /sys/fs/pstore
	mount -t pstore pstore /sys/fs/pstore
	for f in /sys/fs/pstore/dmesg-*; do
		[ -f "$f" ] || continue
		PSTORE_FOUND=1
		n=$(basename "$f")
		echo "LAB: pstore-record $n $(wc -c < "$f")"
		base64 "$f"
		echo "LAB: pstore-end $n"
	done
	say "pstore: $(ls /sys/fs/pstore | wc -l) records"
fi

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
	# netconsole replays the ring buffer through netpoll when a plain target registers;
	# a crash fired while that replay still fills the NIC's transmit ring loses the
	# oops's datagrams (netpoll drops what it cannot queue, and a panic never sends
	# its backlog). Wait until the transmit counter stands still for 0.3 s.
	prev=-1; still=0; n=0
	while [ $still -lt 3 ] && [ $n -lt 100 ]; do
		cur=$(cat /sys/class/net/eth0/statistics/tx_packets)
		if [ "$cur" = "$prev" ]; then still=$((still + 1)); else still=0; fi
		prev=$cur; n=$((n + 1))
		sleep 0.1
	done
	say "netconsole $NC to $DEST (transmit idle after $n polls)"
fi

[ -f /lib/modules/lkdtm.ko ] && insmod /lib/modules/lkdtm.ko
mount -t debugfs debugfs /sys/kernel/debug
echo 8 > /proc/sys/kernel/printk
for m in $(echo "$LOAD" | tr , ' '); do
	insmod "/lib/modules/$m.ko" $(modparams "$m") || say "insmod $m failed"
done
MCEPOLL=$(param lab_mce_poll "")
if [ -n "$MCEPOLL" ]; then
	for c in /sys/devices/system/machinecheck/machinecheck*/check_interval; do
		[ -f "$c" ] && echo "$MCEPOLL" > "$c"
	done
fi
if [ "$(param lab_busy 0)" = 1 ]; then
	(while :; do ls -lR /sys/class /proc/self > /dev/null 2>&1; cat /proc/*/stat > /dev/null 2>&1; done) &
fi
echo "kcrash-lab: guest $NAME ready" > /dev/kmsg
if [ "$PSTORE_FOUND" = 1 ]; then
	say "pstore records read back; powering off"
	poweroff -f
fi

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
idle)
	# A lab target: stays up until it crashes or the host stops it.
	say "idle"
	while :; do sleep 3600; done ;;
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
