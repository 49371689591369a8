#pragma once

/// Everything a user program needs, in one include.
#include <aether/actors/actor.hpp>
#include <aether/actors/actor_id.hpp>
#include <aether/actors/actor_system.hpp>
#include <aether/actors/context.hpp>
#include <aether/actors/task.hpp>
#include <aether/cluster/node.hpp>
#include <aether/persistence/event_bus.hpp>
#include <aether/persistence/event_sourced_actor.hpp>
#include <aether/persistence/event_store.hpp>
#include <aether/runtime/expected.hpp>
#include <aether/runtime/log.hpp>
#include <aether/runtime/metrics.hpp>
