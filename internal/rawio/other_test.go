//go:build !linux

package rawio

const isLinux = false
