// Package pace bounds the rate at which a destination receives deliveries
// from the whole deployment. Every instance takes each delivery's slot from
// one schedule per destination kept in Redis (a Lua script, so that
// instances never race), which spaces the deployment's deliveries evenly:
// 100/s is one every 10ms. Without Redis, or while it fails, each instance
// keeps a schedule of its own at the rate divided by the number of live
// instances serving the destination.
package pace
