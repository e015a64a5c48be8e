-- description: SKUs whose available units are below their reorder level, with the shortfall and reorder quantity.
-- params:
SELECT s.sku,
       p.name,
       s.available,
       s.reorder_level,
       s.reorder_level - s.available AS shortfall,
       COALESCE(p.reorder_quantity, 0) AS reorder_quantity
FROM stock_levels s
LEFT JOIN products p ON p.sku = s.sku
WHERE s.available < s.reorder_level
ORDER BY shortfall DESC, s.sku
