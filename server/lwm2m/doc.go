// Package lwm2m holds the LwM2M data model shared by every part of the server:
// paths, typed values, content-format numbers and the object definitions that type them.
package lwm2m
