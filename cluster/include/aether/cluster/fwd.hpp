#pragma once

/// Forward declarations of the cluster module.
namespace aether {
struct node_config;
class node;
} // namespace aether
